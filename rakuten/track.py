"""Everything that talks to MLflow tracking: where, which run, what is logged.

Other modules compute; this one records. The promotion rule lives in `rakuten.promote`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import mlflow
import requests
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT
from rakuten.pyfunc import TEXT_SIGNATURE

# What a logged text model needs at load time; pinned to the versions it was trained with.
MODEL_REQUIREMENTS = (
    "mlflow", "scikit-learn", "imbalanced-learn", "pandas", "numpy", "scipy", "joblib",
    "cloudpickle", "stop-words", "simplemma", "nltk",
)
IMAGE_REQUIREMENTS = MODEL_REQUIREMENTS + ("tensorflow-cpu", "keras", "pillow")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used."""


def resolve_tracking_uri(configured: str | None) -> str:
    """An explicit `mlflow.tracking_uri` wins, then `MLFLOW_TRACKING_URI`, then the project's
    `sqlite:///<repo>/mlflow.db`. Relative SQLite paths are made absolute."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def connect(configured_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store and experiment; fail within seconds if the server is unreachable."""
    uri = resolve_tracking_uri(configured_uri)
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as error:
            raise TrackingError(f"MLflow tracking server {uri} is unreachable: {error}") from error
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            raise TrackingError(f"folder of the tracking database does not exist: {folder}")
    mlflow.set_tracking_uri(uri)
    if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: its run already has an experiment
        return uri
    try:
        mlflow.set_experiment(experiment)
    except Exception as error:  # the store answers with many exception types
        raise TrackingError(f"cannot use experiment {experiment!r} at {uri}: {error}") from error
    return uri


@contextlib.contextmanager
def run(run_name: str, tags: dict[str, str], nested_in_env_run: bool = False):
    """One MLflow run, ended FAILED if the body raises (never left RUNNING).

    Under `mlflow run`, MLFLOW_RUN_ID names the run it created: a single job logs into it, and
    with `nested_in_env_run` (a Hydra multirun) each job is a child of it.
    """
    env_run_id = os.environ.get("MLFLOW_RUN_ID")
    with contextlib.ExitStack() as stack:
        if env_run_id and nested_in_env_run:
            stack.enter_context(mlflow.start_run(run_id=env_run_id))
            active = stack.enter_context(mlflow.start_run(run_name=run_name, nested=True, tags=tags))
        else:
            active = stack.enter_context(mlflow.start_run(run_name=run_name, tags=tags))
            if env_run_id:
                mlflow.set_tags({"mlflow.runName": run_name, **tags})
        yield active


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"model.estimator.C": "0.74", ...}, the shape MLflow params take."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return flat


def log_config(cfg: DictConfig) -> None:
    """The resolved config, as params (flattened) and as the artifact `config.yaml`."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    mlflow.log_params({key: value[:6000] for key, value in flatten(resolved).items()})
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")


def log_evaluation(metrics: dict[str, float], report_dict: dict, report_text: str, figures: dict) -> None:
    """Metrics, `classification_report.json` / `.txt`, and each figure as `<name>.png`."""
    mlflow.log_metrics(metrics)
    mlflow.log_dict(report_dict, "classification_report.json")
    mlflow.log_text(report_text, "classification_report.txt")
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"{name}.png")
        plt.close(figure)


def log_text_model(pipeline, input_example):
    """Log the fitted pipeline as the run's model `model`, a pyfunc over raw product rows."""
    return _log_pyfunc({"pipeline": pipeline}, {}, TEXT_SIGNATURE, input_example, MODEL_REQUIREMENTS)


def _log_pyfunc(joblib_artifacts: dict, file_artifacts: dict, signature, input_example, packages):
    """Log `rakuten/pyfunc.py` (models-from-code) as the run's model `model`, with the rakuten
    package as its code and these artifacts: objects saved with joblib, and files written by
    `file_artifacts[name](path)`."""
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {}
        for name, value in joblib_artifacts.items():
            artifacts[name] = str(Path(folder) / f"{name}.joblib")
            joblib.dump(value, artifacts[name])
        for name, (file_name, write) in file_artifacts.items():
            artifacts[name] = str(Path(folder) / file_name)
            write(artifacts[name])
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).parent / "pyfunc.py"),
            artifacts=artifacts,
            code_paths=[str(Path(__file__).parent)],
            signature=signature,
            input_example=input_example,
            pip_requirements=requirements(packages),
        )


def requirements(packages=MODEL_REQUIREMENTS) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


def log_files_to_run(run_id: str, paths, artifact_path: str) -> None:
    """Add files to a run after the fact (explanations of a finished run's model)."""
    client = mlflow.MlflowClient()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


def log_candidate(candidate, kind: str) -> None:
    """One search candidate as a child run of the active run: its params and CV score."""
    with mlflow.start_run(run_name=f"{kind}-{candidate.number}", nested=True, tags={"search": kind}):
        mlflow.log_params({key: str(value) for key, value in candidate.params.items()})
        mlflow.log_metrics({"cv_f1_weighted": candidate.cv_score, "cv_f1_weighted_std": candidate.cv_std,
                            "fit_seconds": candidate.fit_seconds})


def log_search_result(result) -> None:
    mlflow.log_params({f"best.{key}": str(value) for key, value in result.best_params.items()})
    mlflow.log_metrics({"best_cv_f1_weighted": result.best_score, "search_candidates": len(result.candidates)})


def log_epoch(metrics: dict[str, float], step: int) -> None:
    mlflow.log_metrics({f"epoch_{key}": value for key, value in metrics.items()}, step=step)


def log_image_model(network, image_config: dict, input_example, signature=None, extra_artifacts=None):
    """Log a Keras network and its image settings (classes included) as the run's model `model`;
    `extra_artifacts` (saved with joblib) make it a fusion model."""
    from rakuten.pyfunc import IMAGE_SIGNATURE

    files = {"keras_model": ("network.keras", network.save),
             "image_config": ("image_config.json", lambda path: Path(path).write_text(json.dumps(image_config)))}
    return _log_pyfunc(extra_artifacts or {}, files, signature or IMAGE_SIGNATURE, input_example,
                       IMAGE_REQUIREMENTS)


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics)
