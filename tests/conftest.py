"""Shared fixtures: the bundled sample, the shared challenge data, a throwaway MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

# pytest-xdist's workers share the cores: each worker's torch and OpenMP take its share of them, not all
# (two workers spinning two threads each on two cores ran a fine-tuning test 8x slower than alone)
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0))
                                            // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)))

import sys  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.stores import SHARED_DIR, SPLIT_ONLY, config, make_store, required_service_missing  # noqa: E402


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The real challenge data beside the checkout (present in development and in CI)."""
    if not (SHARED_DIR / "X_train_update.csv.gz").is_file():
        pytest.skip(f"shared challenge data not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    return make_store(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory):
    """A store whose `rakuten-text@champion` is a LinearSVC trained on 800 sample rows."""
    from rakuten.train import run

    with pytest.MonkeyPatch.context() as monkeypatch:
        uri = make_store(tmp_path_factory.mktemp("champion"), monkeypatch)
        run(config(SPLIT_ONLY, "data.max_rows=800"))
        yield uri


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL on a free port, stopped at the end of the session."""
    from tests.helpers.services import PG_BIN, Postgres, free_port

    if not Postgres.available():
        required_service_missing(f"PostgreSQL binaries not found in {PG_BIN} (set RAKUTEN_PG_BIN)")
    server = Postgres(free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def team_server(postgres, tmp_path_factory):
    """The team set-up: `mlflow server` on PostgreSQL with proxied artifacts; its URL."""
    from tests.helpers.services import free_port, start_mlflow_server, stop

    folder = tmp_path_factory.mktemp("team-server")
    port = free_port()
    process = start_mlflow_server(postgres.create_database("mlflow"), folder / "artifacts", port,
                                  folder / "server.log")
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture(scope="module")
def spark_available():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        required_service_missing("PySpark is not installed (pip install -e '.[spark]')")


# --- test tiers: `pytest -m "not slow and not service"` is the inner loop; CI runs every tier -------------
# A module says its tier itself (`pytestmark`); a test that starts PostgreSQL or the team server through
# these fixtures, or scores on the Spark engine, is a service test wherever it lives.
def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if {"postgres", "team_server"} & set(item.fixturenames) or params.get("engine") == "spark":
            item.add_marker(pytest.mark.service)


def pytest_runtest_logreport(report):
    """A failure is printed when it happens, not only in the closing summary: a run that is stopped later
    (CI's time limit) still says what failed. Printed once, by the process that reports (xdist's controller)."""
    if report.failed and not os.environ.get("PYTEST_XDIST_WORKER"):
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message.splitlines()[0][:300] if crash and crash.message else ""
        sys.stderr.write(f"\nFAILED {report.nodeid}{'' if report.when == 'call' else f' ({report.when})'}: {reason}\n")
