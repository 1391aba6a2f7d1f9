"""The team set-up, for real: `mlflow server` on PostgreSQL with proxied artifacts, jobs from
several processes, the registry, and the tools that start from a model URI."""

import json
import subprocess
import sys
import uuid

import mlflow
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from rakuten import PROJECT_ROOT, data
from tests.helpers.stores import SAMPLE_DIR
from tests.helpers.jobs import (
    FAST, champion_is_best_on_its_fingerprint, job_env, start_train, train,
)

pytestmark = pytest.mark.service  # starts PostgreSQL, an mlflow server, Spark or Chromium

MODELS = ("linearsvc", "sgd", "complementnb", "multinomialnb")


def test_parallel_sweep_registry_and_tools_through_the_server(team_server, tmp_path):
    result = train(team_server, tmp_path / "run", "-m", f"model={','.join(MODELS)}", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}", "mlflow.experiment=team",
                   *FAST, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(team_server)
    runs = mlflow.search_runs(experiment_names=["team"], output_format="list")
    assert sorted(r.data.tags["model"] for r in runs) == sorted(MODELS)
    assert {r.info.status for r in runs} == {"FINISHED"}
    champion, best = champion_is_best_on_its_fingerprint(team_server)
    assert champion == best

    # artifacts come back through the server's proxy
    first = runs[0].info.run_id
    config = mlflow.artifacts.load_text(f"runs:/{first}/config.yaml")
    assert "model:" in config
    assert {"confusion_matrix.png", "classification_report.json"} <= {
        a.path for a in MlflowClient().list_artifacts(first)}

    # the champion loads with pyfunc and scores raw rows; rakuten.promote and rakuten.predict use it
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=40)
    predicted = mlflow.pyfunc.load_model("models:/rakuten-text@champion").predict(products)["prdtypecode"]
    assert len(predicted) == 40
    env = job_env(team_server, tmp_path)
    promoted = subprocess.run([sys.executable, "-m", "rakuten.promote", "--experiment", "team"], cwd=PROJECT_ROOT,
                              env=env, capture_output=True, text=True, timeout=180)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert "challenger" in promoted.stdout
    products.to_csv(tmp_path / "X_test.csv")
    written = subprocess.run([sys.executable, "-m", "rakuten.predict", str(tmp_path / "X_test.csv"), "--output",
                              str(tmp_path / "y_test.csv")], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=180)
    assert written.returncode == 0, written.stderr[-2000:]
    y_test = pd.read_csv(tmp_path / "y_test.csv", index_col=0)
    assert y_test["prdtypecode"].tolist() == predicted.tolist()


def test_two_optuna_workers_fill_one_study(team_server, postgres, tmp_path):
    storage = postgres.create_database("optuna")
    workers = [start_train(team_server, tmp_path / f"worker{n}", "model=sgd", "search=optuna",
                           f"search.storage={storage}", "search.study_name=sgd-shared", "search.n_trials=4",
                           "search.progress_bar=false", "mlflow.experiment=optuna-team", "register=always", *FAST)
               for n in range(2)]
    assert [w.wait(timeout=400) for w in workers] == [0, 0], [
        (tmp_path / f"worker{n}" / "job.log").read_text()[-2000:] for n in range(2)]

    study = optuna.load_study(study_name="sgd-shared", storage=storage)
    numbers = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(numbers) == list(range(8)), "every trial once, none twice"

    mlflow.set_tracking_uri(team_server)
    runs = mlflow.search_runs(experiment_names=["optuna-team"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 8
    for parent in parents:  # each worker: its own 4 trials nested under its own parent
        assert sum(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children) == 4
        assert parent.data.tags["optuna_study"] == "sgd-shared" and parent.data.metrics["study_trials"] >= 4
    last = max(parents, key=lambda r: r.data.metrics["study_trials"])
    assert last.data.metrics["study_trials"] == 8
    assert last.data.metrics["best_cv_f1_weighted"] == pytest.approx(study.best_value, abs=1e-4)  # logged to 4 decimals
    assert {k[len("best."):]: v for k, v in last.data.params.items() if k.startswith("best.")} == {
        k: str(v) for k, v in study.best_params.items()}
    assert "registered_version" in last.data.tags, "the study's best is registered"


def test_jobs_starting_together_all_get_the_experiment_and_its_view(team_server):
    """Jobs that connect at the same moment race to tag a new experiment on the server (PostgreSQL
    refused all but one with a unique-key error, which failed those jobs): all of them connect."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from rakuten import tracking

    experiment = f"race-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(team_server)
    experiment_id = MlflowClient().create_experiment(experiment)
    start = Barrier(8)

    def tag(_):
        start.wait(timeout=30)
        tracking.set_runs_view(experiment_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(tag, range(8)))
    assert MlflowClient().get_experiment(experiment_id).tags[tracking.RUNS_VIEW_TAG] == json.dumps(tracking.RUNS_VIEW)


def test_a_killed_workers_trial_is_marked_failed_and_counted(team_server, postgres, shared_dir, tmp_path):
    """Finding 12: after `kill -9` of one of two Optuna workers on PostgreSQL its trial stayed RUNNING
    and the summary counted it. Expected: Optuna's heartbeat marks it FAIL and the summary says so."""
    import signal
    import time

    storage = postgres.create_database("optuna_heartbeat")
    common = ("model=linearsvc", "search=optuna", f"search.storage={storage}", "search.study_name=killed",
              "search.progress_bar=false", "search.heartbeat_seconds=1", "search.grace_seconds=2",
              "mlflow.experiment=optuna-killed", "register=false", f"data.dir={shared_dir}", "cache.enabled=false",
              "refit=none")  # every row: a trial lasts seconds
    doomed = start_train(team_server, tmp_path / "doomed", *common, "search.n_trials=20")
    try:
        deadline, running_since = time.monotonic() + 300, None
        while True:  # until one of its trials has been under way for a heartbeat or more
            assert doomed.poll() is None and time.monotonic() < deadline, (tmp_path / "doomed" / "job.log").read_text()
            try:
                study = optuna.load_study(study_name="killed", storage=storage)
                running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
            except KeyError:  # the study is not made yet
                running = []
            if not running:
                running_since = None
            elif running_since is None or running_since[0] != running[0]:
                running_since = (running[0], time.monotonic())
            elif time.monotonic() - running_since[1] > 0.8:  # its first heartbeat is recorded
                break
            time.sleep(0.2)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    time.sleep(3)  # past the grace period
    survivor = start_train(team_server, tmp_path / "survivor", *common, "search.n_trials=1")
    assert survivor.wait(timeout=400) == 0, (tmp_path / "survivor" / "job.log").read_text()[-2000:]
    study = optuna.load_study(study_name="killed", storage=storage)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    mlflow.set_tracking_uri(team_server)
    summary = [r for r in mlflow.search_runs(experiment_names=["optuna-killed"], output_format="list")
               if "mlflow.parentRunId" not in r.data.tags and r.info.status == "FINISHED"]
    assert [r.data.metrics["study_failed_trials"] for r in summary] == [1]
    assert summary[0].data.metrics["study_trials"] == states.count(optuna.trial.TrialState.COMPLETE)
    assert "1 failed (a worker died" in (tmp_path / "survivor" / "job.log").read_text()
