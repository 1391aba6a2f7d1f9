"""Shared fixtures: the bundled sample, the shared challenge data, a throwaway MLflow store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mlflow
import pytest
from rakuten import PROJECT_ROOT
from rakuten.train import compose_config

SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="rakuten-features-")  # tests never touch the repo's .cache:
os.environ["RAKUTEN_CACHE_DIR"] = TEST_CACHE_DIR  # the default of every job they start, subprocesses too
SHARED_DIR = Path(os.environ.get("RAKUTEN_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data" / "rakuten"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The real challenge data beside the checkout (present in development and in CI)."""
    if not (SHARED_DIR / "X_train_update.csv.gz").is_file():
        pytest.skip(f"shared challenge data not found at {SHARED_DIR}")
    return SHARED_DIR


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


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    return make_store(tmp_path, monkeypatch)


def config(*overrides: str):
    """The composed Hydra config of `python -m rakuten.train <overrides>`; without the refit on
    every row unless asked (`refit=all`: the tests of refitting and of promotion ask for it)."""
    if not any(o.startswith("cache.dir=") for o in overrides):
        overrides = (f"cache.dir={TEST_CACHE_DIR}", *overrides)
    if not any(o.startswith("refit=") for o in overrides):
        overrides = ("refit=none", *overrides)
    return compose_config(*overrides)


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory):
    """A store whose `rakuten-text@champion` is a LinearSVC trained on 800 sample rows."""
    from rakuten.train import run

    with pytest.MonkeyPatch.context() as monkeypatch:
        uri = make_store(tmp_path_factory.mktemp("champion"), monkeypatch)
        run(config("data.max_rows=800"))
        yield uri


def required_service_missing(what: str):
    """Skip, or fail where RAKUTEN_REQUIRE_SERVICES is set (CI: every service test must run)."""
    if os.environ.get("RAKUTEN_REQUIRE_SERVICES"):
        pytest.fail(f"{what} (RAKUTEN_REQUIRE_SERVICES is set)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL on a free port, stopped at the end of the session."""
    from tests.services import PG_BIN, Postgres, free_port

    if not Postgres.available():
        required_service_missing(f"PostgreSQL binaries not found in {PG_BIN} (set RAKUTEN_PG_BIN)")
    server = Postgres(free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def team_server(postgres, tmp_path_factory):
    """The team set-up: `mlflow server` on PostgreSQL with proxied artifacts; its URL."""
    from tests.services import free_port, start_mlflow_server, stop

    folder = tmp_path_factory.mktemp("team-server")
    port = free_port()
    process = start_mlflow_server(postgres.create_database("mlflow"), folder / "artifacts", port,
                                  folder / "server.log")
    yield f"http://127.0.0.1:{port}"
    stop(process)


# --- test tiers: `pytest -m "not slow and not service"` is the inner loop; CI runs every tier -------------
SERVICE_MODULES = {  # start PostgreSQL, an `mlflow server`, Spark or Chromium
    "test_spark.py", "test_team_server.py", "test_ui.py", "test_team_server_auth.py", "test_server_outage.py",
}
SLOW_MODULES = {  # whole trainings in subprocesses, networks, pretrained weights, studies, signals
    "test_quickstart.py", "test_project.py", "test_train_image.py", "test_train_pretrained.py", "test_studies.py",
    "test_signals.py", "test_store_concurrency.py", "test_promotion_concurrency.py", "test_credentials.py",
    "test_silent_waits.py", "test_readme.py", "test_champion_per_dataset.py", "test_fusion.py",
    # real trainings, served models and subprocesses of seconds each: CI's, not the inner loop's
    "test_train.py", "test_serving.py", "test_train_errors.py", "test_promote.py", "test_config.py",
    "test_pretrained.py", "test_predict.py", "test_explain.py", "test_malformed_input.py", "test_train_pictures.py",
    "test_serve.py", "test_e5_torch.py", "test_repair.py", "test_output_files.py", "test_disk_limits.py", "test_broken_promotion.py",
    "test_leaderboard.py", "test_command.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.path.name in SERVICE_MODULES or {"postgres", "team_server"} & set(item.fixturenames) \
                or params.get("engine") == "spark":
            item.add_marker(pytest.mark.service)
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
