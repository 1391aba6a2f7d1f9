"""Attacks through the config: whoever passes parameters to a launch writes it.

Finding 3: `~model.estimator +model.estimator={_target_:posix.mkdir,path:...}` made the directory,
then ended with a TypeError traceback. Expected: one line naming the key, exit 2, nothing made, no
run. Finding 4: a password in a URI override was printed and stored. Expected: refused in one line
that never holds it, and no param or run holding it."""

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from rakuten import PROJECT_ROOT
from tests.helpers.jobs import job_env

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

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


def files_holding(folder, secret: str) -> list:
    return [path for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


@pytest.mark.parametrize("extra", [(), ("--cfg", "job"), ("-m",)], ids=["run", "cfg-job", "multirun"])
def test_a_password_with_a_slash_is_refused_before_hydra_writes_or_prints_it(store, tmp_path, extra):
    """Finding 13 of the fourth round: a refused password URI was still written by Hydra to the run folder's
    `.hydra/*.yaml`, printed by `--cfg job` and a multirun's job list; a password holding `/` was not
    recognised and was printed whole."""
    secret = "pa/ss-S3cr3t"
    done = train(store, tmp_path, *extra, f"mlflow.tracking_uri=http://alice:{secret}@127.0.0.1:9/",
                 f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "error: mlflow.tracking_uri holds a password in a URI: give the tracking server's credentials in "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, never in a config or parameter"]
    assert secret not in done.stdout + done.stderr and "pa/ss" not in done.stdout + done.stderr
    assert files_holding(tmp_path, secret) == [] and files_holding(PROJECT_ROOT / "outputs", secret) == []
    assert not (tmp_path / "job").exists() and not (tmp_path / "sweep").exists()


def test_the_console_masks_a_password_holding_a_slash():
    from rakuten.tracking import redact

    assert redact("cannot reach http://alice:pa/ss@host:5000/api") == "cannot reach http://alice:***@host:5000/api"


def test_a_run_folder_outside_the_outputs_needs_asking(store, tmp_path):
    """Finding 14: `hydra.run.dir=/etc` made a root run write `/etc/.hydra/*.yaml` and `/etc/train.log`."""
    import shutil
    import uuid

    import tempfile

    # neither the project nor a temporary folder: home, or /var/tmp where home lies in /tmp (a CI's own HOME)
    inside = [PROJECT_ROOT.resolve(), Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve()]
    base = next(base for base in (Path.home(), Path("/var/tmp"))
                if not any(base.resolve().is_relative_to(folder) for folder in inside))
    outside = base / f".rakuten-outside-{uuid.uuid4().hex[:8]}"
    try:
        done = subprocess.run([sys.executable, "-m", "rakuten.train", "data.max_rows=300", f"hydra.run.dir={outside}"],
                              cwd=PROJECT_ROOT, env=job_env(store, tmp_path), capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and not outside.exists()
        assert done.stderr.strip() == (f"error: hydra.run.dir={outside} lies outside this folder ({PROJECT_ROOT}) and "
                                       "the temporary folder: add allow_outside_outputs=true to write there")
        asked = subprocess.run([sys.executable, "-m", "rakuten.train", "data.max_rows=300", f"hydra.run.dir={outside}",
                                "allow_outside_outputs=true", "register=false"], cwd=PROJECT_ROOT,
                               env=job_env(store, tmp_path), capture_output=True, text=True, timeout=300)
        assert asked.returncode == 0, asked.stderr[-2000:]
        assert (outside / ".hydra" / "config.yaml").is_file()
    finally:
        shutil.rmtree(outside, ignore_errors=True)
