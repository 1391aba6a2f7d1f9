"""Bad input through the real command line: one clear line, a non-zero exit, nothing half-written."""

import os
import socket
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow import MlflowClient

from rakuten import PROJECT_ROOT, data
from tests.helpers.stores import SAMPLE_DIR
from tests.helpers.stores import write_challenge_files

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def train(*overrides: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """The command line, its Hydra folder beside the throwaway store (not in the checkout)."""
    hydra_dir = os.path.dirname(os.environ["MLFLOW_TRACKING_URI"][len("sqlite:///"):]) + "/hydra"
    return subprocess.run(
        [sys.executable, "-m", "rakuten.train", *overrides, f"hydra.run.dir={hydra_dir}", "cache.enabled=false"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
    )


def assert_nothing_half_written():
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    assert MlflowClient().search_registered_models() == []


def test_unknown_model_lists_the_valid_ones(store):
    result = train("model=xgboost")
    assert result.returncode != 0
    assert "Could not find 'model/xgboost'" in result.stderr
    assert "linearsvc" in result.stderr and "complementnb" in result.stderr


def test_unknown_resampler_lists_the_valid_ones(store):
    result = train("resampler=tomek")
    assert result.returncode != 0
    assert "Could not find 'resampler/tomek'" in result.stderr and "smote" in result.stderr


def test_folder_without_challenge_files(store, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = train(f"data.dir={empty}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {empty} has no X_train_update.csv (nor X_train_update.csv.gz); it holds: nothing"
    )
    assert_nothing_half_written()


def test_csv_without_designation(store, tmp_path):
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=60)
    write_challenge_files(tmp_path, products.drop(columns="designation"), labels)
    result = train(f"data.dir={tmp_path}")
    assert result.returncode == 2
    assert "has no 'designation' column" in result.stderr.splitlines()[-1]
    assert_nothing_half_written()


def test_products_without_labels(store, tmp_path):
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=60)
    write_challenge_files(tmp_path, products, labels.iloc[5:])
    result = train(f"data.dir={tmp_path}")
    assert result.returncode == 2
    assert "5 of 60 products" in result.stderr.splitlines()[-1]
    assert_nothing_half_written()


def test_unreachable_tracking_server_fails_within_seconds(store):
    with socket.socket() as probe:  # a free local port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = train(f"mlflow.tracking_uri=http://127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in result.stderr
    assert time.monotonic() - started < 30  # mostly interpreter start-up; no retries


def test_failure_inside_the_run_ends_it_failed_and_registers_nothing(store):
    result = train("model=linearsvc", "model.estimator.C=-1", "data.max_rows=300")
    assert result.returncode == 2
    assert "The 'C' parameter" in result.stderr.splitlines()[-1] and "Got -1" in result.stderr.splitlines()[-1]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert_nothing_half_written()


@pytest.mark.parametrize("override", ["data.test_size=1.5", "features.cleaning.normalizer=porter"])
def test_bad_values_are_named(store, override):
    result = train(override, "data.max_rows=300")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and ("test_size" in last or "normalizer" in last)
    assert_nothing_half_written()


def test_image_model_without_the_images_extra_says_which_extra(store, tmp_path):
    """TensorFlow blocked from importing, as in a text-only install (`pip install -e .`)."""
    script = ("import sys; sys.modules['tensorflow'] = None; "
              f"sys.argv = ['train', 'model=sequential', 'hydra.run.dir={tmp_path}']; "
              "import runpy; runpy.run_module('rakuten.train', run_name='__main__', alter_sys=True)")
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model=sequential needs TensorFlow, which the text-only install leaves out: pip install -e '.[images]'")
    assert_nothing_half_written()
