"""Fault: a scheduler or a user stops a training job in the middle of a long fit.

Expected: SIGTERM, or Ctrl-C twice, ends the run KILLED without waiting for the fit, exits
143 / 130, removes the job's temporary files and registers nothing; one Ctrl-C ends it KILLED
after the current step. Nothing is left RUNNING."""

import signal
import time

import mlflow
import pytest
from mlflow import MlflowClient

from tests.helpers.jobs import all_runs, assert_no_run_running, start_train

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

# an SVC fit that takes far longer than the test waits (tens of seconds on 2 cores)
SLOW = ("model=svc", "model.max_features=null", "cache.enabled=false")


def started_run(uri: str, job, log, timeout: float = 120):
    """Wait until the job's run exists and its fit has begun."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert job.poll() is None, log.read_text()[-2000:]
        runs = all_runs(uri) if (log.parent / "mlflow.db").exists() else []
        if runs and "test_f1_weighted" not in runs[0].data.metrics:
            time.sleep(4)  # features fitted, the estimator's fit under way
            return runs[0]
        time.sleep(0.5)
    pytest.fail("the job never started its run")


@pytest.mark.parametrize("signals,exit_code", [((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)])
def test_kill_mid_fit_ends_the_run_killed_at_once(tmp_path, shared_dir, signals, exit_code):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = start_train(uri, tmp_path, *SLOW, f"data.dir={shared_dir}", log=tmp_path / "job.log")
    try:
        started_run(uri, job, tmp_path / "job.log")
        sent = time.monotonic()
        for number in signals:
            job.send_signal(number)
            time.sleep(0.3)
        assert job.wait(timeout=60) == exit_code, (tmp_path / "job.log").read_text()[-2000:]
        waited = time.monotonic() - sent
    finally:
        if job.poll() is None:
            job.kill()
    runs = all_runs(uri)
    assert [r.info.status for r in runs] == ["KILLED"]
    assert waited < 30, f"the job took {waited:.0f}s to stop: it waited for the fit"
    assert "ended KILLED" in (tmp_path / "job.log").read_text().splitlines()[-1]
    assert not list(tmp_path.glob("rakuten-job-*")), "the job's temporary folder was left behind"
    mlflow.set_tracking_uri(uri)
    assert MlflowClient().search_registered_models() == []
    assert_no_run_running(uri)


def test_one_ctrl_c_stops_after_the_current_step(tmp_path, shared_dir):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = start_train(uri, tmp_path, "model=svc", "data.max_rows=1500", f"data.dir={shared_dir}",
                      "cache.enabled=false", log=tmp_path / "job.log")
    try:
        started_run(uri, job, tmp_path / "job.log")
        job.send_signal(signal.SIGINT)
        assert job.wait(timeout=120) == 130, (tmp_path / "job.log").read_text()[-2000:]
    finally:
        if job.poll() is None:
            job.kill()
    assert [r.info.status for r in all_runs(uri)] == ["KILLED"]
    assert not list(tmp_path.glob("rakuten-job-*"))
