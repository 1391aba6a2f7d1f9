"""The project as users drive it: pins, `mlflow run .`, Hydra multirun."""

import pytest
import os
import subprocess
import sys
import tomllib

import mlflow
import yaml

from rakuten import PROJECT_ROOT
from rakuten.train import compose_config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def pins_of(requirements) -> dict[str, str]:
    return dict(line.split("==") for line in requirements if isinstance(line, str) and "==" in line)


def test_pyproject_and_conda_yaml_pin_the_same_versions():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pyproject = pins_of(project["dependencies"] + extras["dev"] + extras["images"])  # conda env: text and images
    conda = yaml.safe_load((PROJECT_ROOT / "conda.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    assert pins_of(pip_section) == pyproject
    assert "python=3.11" in conda["dependencies"]
    assert len(pyproject) == len(project["dependencies"]) + len(extras["dev"]) + len(extras["images"]), \
        "every dependency is pinned"
    python_env = yaml.safe_load((PROJECT_ROOT / "python_env.yaml").read_text())  # `mlflow run .`: text models
    assert pins_of(python_env["dependencies"]) == pins_of(project["dependencies"])


def test_mlproject_main_entry_point():
    project = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())
    main = project["entry_points"]["main"]
    assert project["python_env"] == "python_env.yaml" and "conda_env" not in project
    default_model = compose_config().model.name  # the MLproject's default is the configs' default
    assert {name: spec["default"] for name, spec in main["parameters"].items()} == {
        "model": default_model, "resampler": "none", "overrides": ""}
    assert main["command"].startswith("python -m rakuten.train model={model} resampler={resampler}")
    for name in ("predict", "promote", "explain", "serve"):
        assert project["entry_points"][name]["command"].startswith(f"python -m rakuten.{name} ")


def run_cli(args, store, cwd=PROJECT_ROOT):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # set_experiment sets one
        env.pop(key, None)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = f"{bindir}:{env['PATH']}"  # `mlflow run` calls `python` from PATH
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_mlflow_run_logs_into_the_run_it_created(store, tmp_path):
    # started outside the checkout: `mlflow run` creates the experiment it is given, rooted at ./mlruns
    result = run_cli(
        [os.path.join(os.path.dirname(sys.executable), "mlflow"), "run", str(PROJECT_ROOT), "--env-manager", "local",
         "--experiment-name", "rakuten", "-P", "model=sgd", "-P",
         f"overrides=data.max_rows=400 register=false cache.enabled=false hydra.run.dir={os.path.dirname(store[len('sqlite:///'):])}/h"],
        store, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1, "the job started a second run instead of using MLFLOW_RUN_ID"
    logged = runs[0]
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["model"] == "sgd" and logged.data.params["data.max_rows"] == "400"
    assert "test_f1_weighted" in logged.data.metrics


def test_multirun_gives_one_run_per_job_and_a_study_its_cv_table(store):
    result = run_cli(
        [sys.executable, "-m", "rakuten.train", "-m", "model=multinomialnb,complementnb",
         "data.max_rows=300", "register=false", "cache.enabled=false", "cv.folds=2", "study.name=nb",
         "hydra.sweep.dir=" + os.path.dirname(store[len("sqlite:///"):])],
        store,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")
    jobs = [r for r in runs if r.data.tags.get("run_type") != "summary"]
    assert sorted(r.data.tags["model"] for r in jobs) == ["complementnb", "multinomialnb"]
    assert all(r.info.status == "FINISHED" and r.data.metrics["cv_folds"] == 2 for r in jobs)
    assert all(0 < r.data.metrics["cv_f1_weighted_mean"] < 1 and r.data.metrics["cv_predict_rows_per_s"] > 0
               for r in jobs)
    summary, = [r for r in runs if r.data.tags.get("run_type") == "summary"]
    assert summary.info.run_name == "nb-summary"
    table = mlflow.artifacts.load_text(f"runs:/{summary.info.run_id}/study.csv").splitlines()
    assert table[0].startswith("config,cv_f1_weighted,fit_seconds_per_fold,predict_rows_per_s")
    best = max(jobs, key=lambda r: r.data.metrics["cv_f1_weighted_mean"])
    assert table[1].startswith(f"model={best.data.tags['model']},") and len(table) == 3  # what differs
    assert summary.data.metrics["best_cv_f1_weighted_mean"] == best.data.metrics["cv_f1_weighted_mean"]
    assert summary.data.tags["best_config"] == table[1].split(",")[0]
    assert "study nb, by cross-validated weighted F1" in result.stdout


def test_submitit_launcher_runs_jobs_as_separate_processes(store, tmp_path):
    """The SLURM path's launcher, run locally: each job its own process, its own run."""
    result = run_cli(
        [sys.executable, "-m", "rakuten.train", "-m", "model=multinomialnb,complementnb",
         "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={tmp_path}",
         "data.max_rows=300", "register=false", "cache.enabled=false"],
        store,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")
    assert sorted(r.data.tags["model"] for r in runs) == ["complementnb", "multinomialnb"]
    assert len({r.data.tags["rakuten.pid"] for r in runs}) == 2
    assert all(r.info.status == "FINISHED" for r in runs)


def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=submitit_slurm", "hydra.launcher.partition=cpu",
                                 "hydra.launcher.cpus_per_task=2", "hydra.launcher.timeout_min=30"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.cpus_per_task, launcher.timeout_min) == ("cpu", 2, 30)


def test_mlflow_run_without_an_experiment_logs_where_users_look(store):
    """`mlflow run .` with no --experiment-name makes its run in `Default`; the job logs into the
    configured experiment (`rakuten`) and the launch's run points at it."""
    result = run_cli(
        [os.path.join(os.path.dirname(sys.executable), "mlflow"), "run", ".", "--env-manager", "local",
         "-P", "model=sgd", "-P",
         f"overrides=data.max_rows=300 register=false cache.enabled=false hydra.run.dir={os.path.dirname(store[len('sqlite:///'):])}/h"],
        store,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job, = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")
    launch, = mlflow.search_runs(experiment_names=["Default"], output_format="list")
    assert job.info.status == "FINISHED" and "test_f1_weighted" in job.data.metrics
    assert launch.info.status == "FINISHED" and launch.data.tags["rakuten.job_run"] == f"rakuten/{job.info.run_id}"
    assert job.info.run_id in launch.data.tags["mlflow.note.content"]
