"""What reaches the store and the console: never a password."""

import socket
import subprocess
import sys

import mlflow
import pytest

from rakuten import PROJECT_ROOT, recipes, tracking
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config


def test_redact_masks_every_password():
    text = "http://alice:s3cret@host:5000 and postgresql+psycopg://bob:p%40ss@db/mlflow, http://host/x@y"
    assert tracking.redact(text) == ("http://alice:***@host:5000 and postgresql+psycopg://bob:***@db/mlflow, "
                                  "http://host/x@y")


def test_no_password_in_params_or_config(store):
    import pytest

    from rakuten.config_checks import ConfigError

    with pytest.raises(ConfigError, match="search.storage holds a password in a URI: give the database's password "
                                          "in PGPASSWORD or ~/.pgpass"):
        run(config(SPLIT_ONLY, "data.max_rows=300", "register=false", "mlflow.experiment=secrets",
                   "+search.storage=postgresql://alice:hunter2@db/optuna"))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    with mlflow.start_run():  # logged anyway (a config that skipped the check): masked
        cfg = config("search=optuna", "search.storage=postgresql://alice:hunter2@db/optuna")
        tracking.log_config(cfg, recipes.comparable_params(cfg))
        params = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    assert params["search.storage"] == "postgresql://alice:***@db/optuna"


def test_params_are_the_ones_people_compare(store):
    params = recipes.comparable_params(config("model=sgd", "resampler=smote"))
    assert {"model.name": "sgd", "model.class": "SGDClassifier", "model.alpha": "0.0001", "resampler.name": "smote",
            "resampler.k_neighbors": "5", "features.name": "tfidf", "search.name": "none"}.items() <= params.items()
    assert not any(key.startswith(("augment.", "cache.", "mlflow.")) or "search_space" in key for key in params)
    assert len(params) < 25
    image = recipes.comparable_params(config("model=sequential"))
    assert image["augment.name"] == "low" and not any(key.startswith(("resampler.", "features.")) for key in image)
    assert image["model.schedule"] == "plateau" and image["model.epochs"] == "30"  # conf/trainer/keras.yaml
    fused = recipes.comparable_params(config("model=fusion"))  # each part's groups, as its own recipe says
    assert fused["model.text.class"] == "SGDClassifier" and fused["model.image.descriptors.hog_cell"] == "12"
    assert fused["model.method"] == "late" and "augment.name" not in fused  # a picture pipeline: no augmentation


def test_no_password_in_the_error_line(store, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import os

    result = subprocess.run(  # in the environment (an override holding it is refused: tests/security/test_config.py)
        [sys.executable, "-m", "rakuten.train", f"hydra.run.dir={tmp_path}"],
        env={**os.environ, "MLFLOW_TRACKING_URI": f"http://alice:hunter2@127.0.0.1:{port}"},
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "hunter2" not in result.stderr + result.stdout
    assert f"http://alice:***@127.0.0.1:{port}" in result.stderr


def test_a_reply_cut_by_a_dying_server_is_an_outage_and_an_answered_error_is_not():
    from mlflow.exceptions import MlflowException

    cut = MlflowException("API request to http://127.0.0.1:58013/api/2.0/mlflow/runs/get failed with exception "
                          "('Connection broken: IncompleteRead(0 bytes read, 3570 more expected)', "
                          "IncompleteRead(0 bytes read, 3570 more expected))")
    answered = MlflowException("BAD_REQUEST: duplicate key value violates unique constraint")
    assert tracking.is_outage(cut) and not tracking.is_outage(answered)


def test_a_logging_call_whose_reply_was_cut_is_made_again_and_other_errors_are_not():
    from mlflow.exceptions import MlflowException

    from rakuten.tracking.http import BROKEN_REPLY_CALLS, called_again_on_broken_reply

    cut = MlflowException("API request to http://127.0.0.1:58013/api/2.0/mlflow/runs/get failed with exception "
                          "('Connection broken: IncompleteRead(0 bytes read, 3570 more expected)', ...)")
    retries_spent = MlflowException("API request to http://127.0.0.1:1/api/2.0/mlflow/runs/get failed with exception "
                                    "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
                                    "(Caused by ProtocolError('Connection broken: IncompleteRead'))")
    calls = []

    @called_again_on_broken_reply
    def log(failures):
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "logged"

    assert log([cut]) == "logged" and len(calls) == 2
    for failures, made in (([cut] * BROKEN_REPLY_CALLS, BROKEN_REPLY_CALLS),  # not forever
                           ([retries_spent], 1),  # MLflow's retries already waited: no second wait
                           ([MlflowException("BAD_REQUEST: no such run")], 1)):  # answered
        calls.clear()
        with pytest.raises(MlflowException):
            log(failures)
        assert len(calls) == made
