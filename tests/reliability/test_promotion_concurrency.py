"""Fault: jobs that finish together each read the same champion and move the alias.

Expected: whatever the interleaving, `champion` ends on the best version of its data
fingerprint, and a worse model never holds it at the end."""

import random
import subprocess
import sys
import threading

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from rakuten import PROJECT_ROOT, registry
from rakuten.data_of import DataOf
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config
from tests.helpers.jobs import (
    FAST, assert_no_run_running, champion_is_best_on_its_fingerprint, job_env, start_train,
)

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

# four models of clearly different strength on the same 300 rows (one data fingerprint)
JOBS = [("model=multinomialnb", "model.estimator.alpha=30", "model.max_features=300"),
        ("model=complementnb",), ("model=sgd",), ("model=linearsvc",)]


def test_parallel_jobs_leave_the_best_as_champion(tmp_path):
    """Four real jobs finishing together (the threaded test below covers many more interleavings)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    jobs = [start_train(uri, tmp_path / f"job{number}", *overrides, *FAST, "register=always")
            for number, overrides in enumerate(JOBS)]
    assert [job.wait(timeout=300) for job in jobs] == [0, 0, 0, 0], [
        (tmp_path / f"job{n}" / "job.log").read_text()[-1500:] for n in range(len(JOBS))]
    holder, best = champion_is_best_on_its_fingerprint(uri)
    assert holder == best
    assert len(MlflowClient().search_model_versions("name='rakuten-text'")) == 4
    assert_no_run_running(uri)


def test_interleaved_promotions_converge_on_the_best(store):
    """Eight promoters at once, in random order, over versions registered on one fingerprint."""
    scores = [run(config(SPLIT_ONLY, "data.max_rows=300", *overrides)) for overrides in JOBS]
    client = MlflowClient()
    versions = sorted(client.search_model_versions("name='rakuten-text'"), key=lambda v: int(v.version))
    fingerprint = versions[0].tags["data_fingerprint"]
    best = str(max(versions, key=lambda v: (float(v.tags["test_f1_weighted"]), -int(v.version))).version)
    for trial in range(5):
        client.set_registered_model_alias("rakuten-text", "champion", versions[0].version)  # the weakest
        order = random.Random(trial).choices(versions, k=8)
        barrier = threading.Barrier(len(order))

        def promote_one(version):
            barrier.wait()
            candidate = registry.Candidate(float(version.tags["test_f1_weighted"]), fingerprint,
                                           DataOf.of_tags(version.tags), number=str(version.version))
            rows = registry.TestRows(np.array([10]), np.array([1]), None, lambda uri, retrain: np.array([10]))
            registry.propose("rakuten-text", candidate, rows, registry.Policy(5.0), None)

        threads = [threading.Thread(target=promote_one, args=(v,)) for v in order]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        # every promoter compares every version on the fingerprint, its own and the others'
        assert str(registry.current_champion("rakuten-text").version) == best, f"trial {trial}"
    assert max(scores) == pytest.approx(float(client.get_model_version("rakuten-text", best).tags["test_f1_weighted"]))


def test_promote_command_registers_runs_logged_without_registration(store, tmp_path):
    """`python -m rakuten.promote` in a fresh process, on runs trained with register=false."""
    for overrides in JOBS[:2]:
        run(config(SPLIT_ONLY, "data.max_rows=300", "register=false", *overrides))
    result = subprocess.run([sys.executable, "-m", "rakuten.promote"], cwd=PROJECT_ROOT,
                            env=job_env(store, tmp_path), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "v1: champion" in result.stdout and "challenger" in result.stdout
    champion, best = champion_is_best_on_its_fingerprint(store)
    assert champion == best


def test_two_jobs_on_new_data_retrain_the_champions_recipe_once(tmp_path, shared_dir):
    """Finding 8 of the fourth round: two trainings on new data at once each retrained the champion's recipe
    there: two duplicate versions, and one job's message no longer true. Expected: one retraining per
    (champion, data); the other job says what the registry holds."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sample = start_train(uri, tmp_path / "sample", "model=linearsvc", "cache.enabled=false")
    assert sample.wait(timeout=300) == 0, (tmp_path / "sample" / "job.log").read_text()[-1500:]
    weak = (*JOBS[0], f"data.dir={shared_dir}", "data.max_rows=2400", "cache.enabled=false")  # more rows: new data;
    # both lose to the champion's recipe
    jobs = [start_train(uri, tmp_path / f"new{number}", *weak, f"seed={42 + number}") for number in range(2)]
    logs = [tmp_path / f"new{number}" / "job.log" for number in range(2)]
    assert [job.wait(timeout=600) for job in jobs] == [0, 0], [log.read_text()[-1500:] for log in logs]
    mlflow.set_tracking_uri(uri)
    versions = sorted(MlflowClient().search_model_versions("name='rakuten-text'"), key=lambda v: int(v.version))
    assert len(versions) == 2, [(v.version, v.tags.get("dataset")) for v in versions]
    assert versions[1].tags["dataset"] == "rakuten-full"
    assert str(MlflowClient().get_registered_model("rakuten-text").aliases["champion"]) == "2"
    said = [log.read_text().strip().splitlines()[-1] for log in logs]
    assert sum("is not trained here again" in line for line in said) == 1, said
    assert sum("rakuten-text v2 is champion" in line for line in said) == 2, said
    assert_no_run_running(uri)
