"""Attacks through the config: whoever passes parameters to a launch writes it.

Finding 3: `~model.estimator +model.estimator={_target_:posix.mkdir,path:...}` made the directory,
then ended with a TypeError traceback. Expected: one line naming the key, exit 2, nothing made, no
run. Finding 4: a password in a URI override was printed and stored. Expected: refused in one line
that never holds it, and no param or run holding it."""

import subprocess
import sys

import mlflow
import pytest

from rakuten import PROJECT_ROOT
from tests.helpers.jobs import job_env

PASSWORD = "S3cr3tPw"


def train(store: str, tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rakuten.train", "data.max_rows=300", *overrides,
                           f"hydra.run.dir={tmp_path / 'job'}"], cwd=PROJECT_ROOT, env=job_env(store, tmp_path),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", ["posix.mkdir", "os.mkdir", "builtins.exec", "subprocess.run"])
def test_a_target_outside_the_zoo_is_refused_before_anything_runs(store, tmp_path, target):
    made = tmp_path / "made-by-the-config"
    done = train(store, tmp_path, "~model.estimator", f"+model.estimator={{_target_:{target},path:{made}}}")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: model.estimator._target_={target} is not allowed: a _target_ must be a "
                                   "class or function of sklearn, imblearn, rakuten, lightgbm, xgboost, catboost")
    assert not made.exists()
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_target_hidden_in_a_resampler_is_refused_too(store, tmp_path):
    done = train(store, tmp_path, "resampler=smote", "resampler.sampler._target_=os.system")
    assert done.returncode == 2 and "resampler.sampler._target_=os.system is not allowed" in done.stderr


def test_credentials_in_an_override_are_refused_and_never_printed_or_stored(store, tmp_path):
    done = train(store, tmp_path, f"mlflow.tracking_uri=http://alice:{PASSWORD}@127.0.0.1:9/")
    assert done.returncode == 2
    assert PASSWORD not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: mlflow.tracking_uri holds a password in a URI: give the tracking server's credentials in "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, never in a config or parameter"]
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    hidden = train(store, tmp_path, f"+note=see https://bob:{PASSWORD}@example.org/x")
    assert hidden.returncode == 2 and "note holds a password" in hidden.stderr and PASSWORD not in hidden.stderr
