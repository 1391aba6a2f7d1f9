"""What tests share besides fixtures: the bundled sample, the shared data, a throwaway MLflow store,
the composed config of a job."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from rakuten import PROJECT_ROOT, data
from rakuten.train import compose_config

SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="rakuten-features-")  # tests never touch the repo's .cache:
os.environ["RAKUTEN_CACHE_DIR"] = TEST_CACHE_DIR  # the default of every job they start, subprocesses too
SHARED_DIR = Path(os.environ.get("RAKUTEN_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data" / "rakuten"))
SPLIT_ONLY = "refit=none"  # a test that scores the split and needs no model refitted on every row says so


def make_store(folder: Path, monkeypatch) -> str:
    """A fresh SQLite tracking store, made the current one for MLflow and for rakuten.train."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    with monkeypatch.context() as here:  # MLflow roots the store's Default experiment at ./mlruns
        here.chdir(folder)
        mlflow.set_experiment(experiment_id="0")  # forget the experiment of the previous store
    return uri


def config(*overrides: str):
    """The composed Hydra config of `python -m rakuten.train <overrides>`, users' defaults included
    (`refit=all`): only the feature cache is the test session's own."""
    if not any(o.startswith("cache.dir=") for o in overrides):
        overrides = (f"cache.dir={TEST_CACHE_DIR}", *overrides)
    return compose_config(*overrides)


def required_service_missing(what: str):
    """Skip, or fail where RAKUTEN_REQUIRE_SERVICES is set (CI: every service test must run)."""
    if os.environ.get("RAKUTEN_REQUIRE_SERVICES"):
        pytest.fail(f"{what} (RAKUTEN_REQUIRE_SERVICES is set)")
    pytest.skip(what)


def requires_extra(module: str, extra: str) -> None:
    """At a test module's top, before it imports `module`: skip the module when the extra that installs
    it is absent (the fast tier on `pip install -e ".[dev]"`), or fail it where RAKUTEN_REQUIRE_SERVICES
    is set (CI installs every extra: a missing one is a broken install, not a reason to skip)."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return
    what = f"{module} is not installed: pip install -e '.[{extra}]'"
    if os.environ.get("RAKUTEN_REQUIRE_SERVICES"):
        pytest.fail(f"{what} (RAKUTEN_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def write_challenge_files(folder, products: pd.DataFrame, labels: pd.Series, gz: bool = False):
    suffix = ".gz" if gz else ""
    products.to_csv(folder / f"{data.X_FILE}{suffix}")
    labels.to_frame(data.LABEL).to_csv(folder / f"{data.Y_FILE}{suffix}")
    return folder

# the scikit-learn text model configs (conf/model)
MODELS = ["logreg", "multinomialnb", "complementnb", "svc", "linearsvc", "sgd", "sgd_hinge", "knn", "decisiontree",
          "adaboost", "bagging", "voting"]
