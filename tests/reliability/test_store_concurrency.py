"""Fault: several jobs start together on a SQLite store that none has used (MLflow creates and
migrates it in each of them). Expected: every job finishes, one run each, no stray migration
table, nothing RUNNING."""

import pytest

from tests.helpers.jobs import FAST, all_runs, assert_no_run_running, sqlite_tables, start_train, train

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

MODELS = ("linearsvc", "sgd", "complementnb", "multinomialnb")


@pytest.mark.parametrize("repetition", range(2))  # experiments/sweep_reliability.py repeats it more
def test_four_jobs_on_a_fresh_store_all_finish(tmp_path, repetition):
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    jobs = [start_train(uri, tmp_path / model, f"model={model}", "register=false", *FAST) for model in MODELS]
    codes = [job.wait(timeout=300) for job in jobs]
    logs = {model: (tmp_path / model / "job.log").read_text()[-1500:] for model in MODELS}
    assert codes == [0, 0, 0, 0], logs
    runs = all_runs(uri)
    assert sorted(r.data.tags["model"] for r in runs) == sorted(MODELS)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert not any(table.startswith("_alembic_tmp") for table in sqlite_tables(database))
    assert not any("database is locked" in text for text in logs.values())
    assert_no_run_running(uri)


def test_parallel_joblib_sweep_on_a_fresh_store(tmp_path):
    """`-m` with hydra/launcher=joblib, two jobs at a time: one FINISHED run per job."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(uri, tmp_path / "run", "-m", f"model={','.join(MODELS)}", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}", "register=false", *FAST,
                   timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = all_runs(uri)
    assert sorted(r.data.tags["model"] for r in runs) == sorted(MODELS)
    assert {r.info.status for r in runs} == {"FINISHED"}
