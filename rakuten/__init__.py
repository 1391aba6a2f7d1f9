"""Rakuten France product-type classification: an MLflow-tracked model zoo."""
from pathlib import Path

__version__ = "0.1.0"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
