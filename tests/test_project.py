"""The project as users drive it: pins, `mlflow run .`, Hydra multirun."""

import os
import subprocess
import sys
import tomllib

import mlflow
import yaml

from rakuten import PROJECT_ROOT


def pins_of(requirements) -> dict[str, str]:
    return dict(line.split("==") for line in requirements if isinstance(line, str) and "==" in line)


def test_pyproject_and_conda_yaml_pin_the_same_versions():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    pyproject = pins_of(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = yaml.safe_load((PROJECT_ROOT / "conda.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    assert pins_of(pip_section) == pyproject
    assert "python=3.11" in conda["dependencies"]
    assert len(pyproject) == len(project["dependencies"]) + 1, "every dependency is pinned"


def test_mlproject_main_entry_point():
    project = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())
    main = project["entry_points"]["main"]
    assert project["conda_env"] == "conda.yaml"
    assert {name: spec["default"] for name, spec in main["parameters"].items()} == {
        "model": "linearsvc", "resampler": "none", "overrides": ""}
    assert main["command"].startswith("python -m rakuten.train model={model} resampler={resampler}")
    for name in ("predict", "promote", "explain", "serve"):
        assert project["entry_points"][name]["command"].startswith(f"python -m rakuten.{name} ")


def run_cli(args, store):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    env.pop("MLFLOW_RUN_ID", None)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = f"{bindir}:{env['PATH']}"  # `mlflow run` calls `python` from PATH
    return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_mlflow_run_logs_into_the_run_it_created(store):
    result = run_cli(
        [os.path.join(os.path.dirname(sys.executable), "mlflow"), "run", ".", "--env-manager", "local",
         "-P", "model=sgd", "-P", "overrides=data.max_rows=400 register=false"],
        store,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1, "the job started a second run instead of using MLFLOW_RUN_ID"
    logged = runs[0]
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["model"] == "sgd" and logged.data.params["data.max_rows"] == "400"
    assert "test_f1_weighted" in logged.data.metrics


def test_multirun_gives_one_run_per_job(store):
    result = run_cli(
        [sys.executable, "-m", "rakuten.train", "-m", "model=multinomialnb,complementnb",
         "data.max_rows=300", "register=false", "hydra.sweep.dir=" + os.path.dirname(store[len("sqlite:///"):])],
        store,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")
    assert sorted(r.data.tags["model"] for r in runs) == ["complementnb", "multinomialnb"]
    assert all(r.info.status == "FINISHED" for r in runs)
