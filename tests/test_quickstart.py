"""The README's quick start on a fresh clone, as a new user types it: a virtualenv, `pip install
-e .`, then the design card's literal `mlflow run . -P model=linearsvc` (MLflow's default env
manager for a python_env project, no conda). It must finish a tracked run, with test_f1_weighted,
in the experiment users look at (`rakuten`); the launch's own run in `Default` points at it."""

import os
import shutil
import subprocess
import sys

import mlflow
import pytest

from rakuten import PROJECT_ROOT

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def sh(command: str, cwd, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MLFLOW_", "VIRTUAL_ENV", "RAKUTEN_"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("pyenv") is None and not os.environ.get("RAKUTEN_REQUIRE_SERVICES"),
                    reason="MLflow's virtualenv manager needs pyenv (or use --env-manager local / uv)")
def test_the_literal_mlflow_run_finishes_a_run_in_the_rakuten_experiment(tmp_path):
    clone = tmp_path / "rakuten"
    assert sh(f"git clone --quiet {PROJECT_ROOT} {clone}", tmp_path).returncode == 0
    setup = sh("python3 -m venv .venv && . .venv/bin/activate && pip install --quiet -e .", clone)
    assert setup.returncode == 0, setup.stderr[-3000:]
    launched = sh(". .venv/bin/activate && mlflow run . -P model=linearsvc", clone)
    assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{clone / 'mlflow.db'}")
    job, = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")
    assert job.info.status == "FINISHED" and "test_f1_weighted" in job.data.metrics
    assert job.data.tags["model"] == "linearsvc"
    launch, = mlflow.search_runs(experiment_names=["Default"], output_format="list")
    assert launch.info.status == "FINISHED" and launch.data.tags["rakuten.job_run"] == f"rakuten/{job.info.run_id}"
    assert launch.data.tags["mlflow.project.env"] == "virtualenv"
