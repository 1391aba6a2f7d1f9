"""Defaults the commands share with the training config, read from `conf/config.yaml`: one home each."""

from __future__ import annotations

import yaml

from rakuten import PROJECT_ROOT

_CONFIG = yaml.safe_load((PROJECT_ROOT / "conf" / "config.yaml").read_text())

EXPERIMENT: str = _CONFIG["mlflow"]["experiment"]  # where jobs log their runs
EVALUATIONS: str = f"{EXPERIMENT}-evaluations"  # where `rakuten.evaluate` logs its runs
FAST_BUDGET_MS: float = float(_CONFIG["fast_budget_ms"])  # alias `fast`: ms a row in a batch
