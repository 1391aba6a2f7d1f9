"""A fitted predictor logged as the run's model `model`: `rakuten/pyfunc.py` (models-from-code) with
the rakuten package as its code, the predictor's files as artifacts, a signature, an input example
and the pinned requirements of what it needs at load time. Beside the adapter it logs, so that the
tracking package never imports the adapter."""

from __future__ import annotations

import json
import logging
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
import mlflow

from rakuten.predictors import FUSION_ARTIFACT, PICTURE_PART, TEXT_PART
from rakuten.tracking.http import called_again_on_broken_reply
from rakuten.pyfunc import FUSION_SIGNATURE, IMAGE_SIGNATURE, TEXT_SIGNATURE

log = logging.getLogger("rakuten.model_logging")


# What every logged model needs at load time (the adapter itself); the rest comes from its objects
ADAPTER_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scipy", "joblib", "cloudpickle")
NETWORK_REQUIREMENTS = ("tensorflow-cpu", "keras", "pillow")  # a Keras network is no scikit-learn object


def requirements_of(*pipelines) -> tuple[str, ...]:
    """The distributions the objects of fitted pipelines come from (a new model family's package is
    found from its estimator's module: a yaml and a pin make it servable), and what the project's own
    steps declare they need (`requirements`, e.g. the tokenizer's nltk, the extractors' weights)."""
    from importlib.metadata import packages_distributions

    owners, found = packages_distributions(), []
    for pipeline in pipelines:
        for value in [pipeline, *pipeline.get_params(deep=True).values()]:
            if hasattr(value, "get_params") and not isinstance(value, type):  # scikit-learn's API, CatBoost's too
                top = type(value).__module__.split(".")[0]
                found += [name for name in owners.get(top, []) if name != "rakuten"]  # shipped as code
                found += list(getattr(value, "requirements", ()) or ())
    return tuple(dict.fromkeys(found))


def log_text_model(pipeline, input_example):
    """Log the fitted pipeline as the run's model `model`, a pyfunc over raw product rows."""
    return _log_pyfunc("text", {"pipeline": pipeline}, {}, TEXT_SIGNATURE, input_example,
                       ADAPTER_REQUIREMENTS + requirements_of(pipeline))


@called_again_on_broken_reply
def _log_pyfunc(predictor: str, joblib_artifacts: dict, file_artifacts: dict, signature, input_example, packages):
    """Log `rakuten/pyfunc.py` (models-from-code) as the run's model `model`, with the rakuten
    package as its code and these artifacts: objects saved with joblib, and files written by
    `file_artifacts[name](path)`. `predictor` (a key of `pyfunc.PREDICTORS`) is recorded in the
    model's config: what loads it is written down, not guessed from its artifacts."""
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {}
        for name, value in joblib_artifacts.items():
            artifacts[name] = str(Path(folder) / f"{name}.joblib")
            joblib.dump(value, artifacts[name])
        for name, (file_name, write) in file_artifacts.items():
            artifacts[name] = str(Path(folder) / file_name)
            write(artifacts[name])
        try:
            return mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).parent / "pyfunc.py"),
                artifacts=artifacts,
                code_paths=[str(Path(__file__).parent)],
                signature=signature,
                input_example=input_example,
                pip_requirements=requirements(packages),
                model_config={"predictor": predictor},
            )
        except BaseException:
            remove_unfinished_models()
            raise


def remove_unfinished_models() -> None:
    """After a failed log (a full disk, a kill): the artifacts of the active run's logged models that
    never became READY are deleted, and the models with them; nothing half-written stays in the store."""
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelStatus
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    active = mlflow.active_run()
    if active is None:
        return
    client = MlflowClient()
    for model in client.search_logged_models([active.info.experiment_id],
                                             filter_string=f"source_run_id = '{active.info.run_id}'"):
        if model.status == LoggedModelStatus.READY:
            continue
        try:
            get_artifact_repository(model.artifact_location).delete_artifacts()
            client.delete_logged_model(model.model_id)
        except Exception:  # noqa: BLE001 - the store may refuse as the disk did; the first error is what counts
            log.warning("could not remove the unfinished model %s at %s", model.model_id, model.artifact_location)


def requirements(packages=ADAPTER_REQUIREMENTS) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def log_picture_model(pipeline, input_example):
    """Log a scikit-learn pipeline over pictures as the run's model `model` (`image_path` rows)."""
    return _log_pyfunc("picture", {PICTURE_PART: pipeline}, {}, IMAGE_SIGNATURE, input_example,
                       ADAPTER_REQUIREMENTS + requirements_of(pipeline))


def log_fusion_model(fused: dict, input_example, signature=FUSION_SIGNATURE):
    """Log a fusion whose parts are all scikit-learn pipelines (saved together with joblib)."""
    return _log_pyfunc("fusion", {FUSION_ARTIFACT: fused}, {}, signature, input_example,
                       ADAPTER_REQUIREMENTS + requirements_of(fused[TEXT_PART], fused[PICTURE_PART]))


def log_image_model(network, image_config: dict, input_example, signature=None, extra_artifacts=None):
    """Log a Keras network and its image settings (classes included) as the run's model `model`;
    `extra_artifacts` (saved with joblib) make it a fusion model."""
    files = {"keras_model": ("network.keras", network.save),
             "image_config": ("image_config.json", lambda path: Path(path).write_text(json.dumps(image_config)))}
    parts = [value[TEXT_PART] for value in (extra_artifacts or {}).values() if TEXT_PART in value]
    return _log_pyfunc("fusion" if extra_artifacts else "network", extra_artifacts or {}, files, signature or IMAGE_SIGNATURE, input_example,
                       ADAPTER_REQUIREMENTS + NETWORK_REQUIREMENTS + requirements_of(*parts))


def log_fusion_network(network, image_config: dict, input_example, fused: dict):
    """Log a fusion whose image part is a Keras network (saved as its own file)."""
    return log_image_model(network, image_config, input_example, signature=FUSION_SIGNATURE,
                           extra_artifacts={FUSION_ARTIFACT: fused})
