"""What tells runs apart: the params people compare, the whole config, and the data a run used
(MLflow datasets, for the runs table's Dataset column)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT
from rakuten.tracking.console import muted, redact
from rakuten.tracking.http import called_again_on_broken_reply


@called_again_on_broken_reply
def log_config(config: DictConfig | dict, params: dict[str, str]) -> None:
    """The params a person compares (`comparable_params`) and the whole resolved config (a
    DictConfig or its resolved dict) as the artifact `config.yaml`."""
    mlflow.log_params({key: redact(value)[:6000] for key, value in params.items()})
    mlflow.log_text(redact(OmegaConf.to_yaml(config, resolve=True)), "config.yaml")


@called_again_on_broken_reply
def log_placements(found: dict[str, str]) -> None:
    """Where each network of the run computed (`placement.e5`: "cpu bf16"): what its config's `auto`
    became on this machine (`rakuten.features.hardware.recorded_placements`)."""
    if found:
        mlflow.log_params({f"placement.{network}": where for network, where in found.items()})


POPULATION_ARTIFACT = "data/population.npy"  # the row ids the run's data offered: what the registry compares
TEST_PREDICTIONS_ARTIFACT = "data/test_predictions.npz"  # ids and predictions of the test rows: the gain's interval


@called_again_on_broken_reply
def log_test_predictions(ids, predicted) -> None:
    """The run's predictions of its test rows (`TEST_PREDICTIONS_ARTIFACT`): what a later candidate on the
    same split holds its own against, row by row (`rakuten.registry.gain`)."""
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(TEST_PREDICTIONS_ARTIFACT).name
        np.savez(path, ids=np.asarray(ids), predicted=np.asarray(predicted))
        mlflow.log_artifact(str(path), Path(TEST_PREDICTIONS_ARTIFACT).parent.as_posix())


def logged_test_predictions(run_id: str, ids):
    """The predictions run `run_id` logged of the rows `ids`, in that order; None when it logged none
    (a run of an older version) or not of these rows."""
    import numpy as np
    import pandas as pd

    try:
        with muted():
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TEST_PREDICTIONS_ARTIFACT)
        with np.load(path, allow_pickle=False) as logged:
            found = pd.Series(logged["predicted"], index=logged["ids"])
    except (MlflowException, OSError, ValueError, KeyError):
        return None
    if found.index.has_duplicates or not pd.Index(ids).isin(found.index).all():
        return None
    return found.loc[np.asarray(ids)].to_numpy()


def dataset_name(data_dir: str, modality: str = "text") -> str:
    """What the runs table calls a data folder: `rakuten-sample` (the bundled sample), `rakuten-full`
    (the shared challenge data), else `rakuten-<folder name>`; `-images` / `-fusion` after it for
    the picture and fusion runs of that folder (they learn from other rows of it)."""
    folder = Path(data_dir).resolve()
    if folder == (PROJECT_ROOT / "data" / "sample").resolve():
        name = "rakuten-sample"
    elif folder.parts[-3:] == ("shared", "data", "rakuten"):
        name = "rakuten-full"
    else:
        name = f"rakuten-{folder.name}"
    return name if modality == "text" else f"{name}-{'images' if modality == 'image' else modality}"


@called_again_on_broken_reply
def log_datasets(parts, data_dir: str, modality: str = "text") -> str:
    """The run's training and test rows as MLflow datasets (the runs table's Dataset column and
    filter): named by `dataset_name`, digest the split's `data_fingerprint`, source the folder; and
    the ids of every row its data offered (`POPULATION_ARTIFACT`), which the promotion rule reads."""
    import tempfile
    import time
    import warnings

    import mlflow.data
    import numpy as np

    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")  # ids: never null
    name = dataset_name(data_dir, modality)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(POPULATION_ARTIFACT).name
        np.save(path, np.asarray(parts.population_index, dtype="int64"))
        mlflow.log_artifact(str(path), Path(POPULATION_ARTIFACT).parent.as_posix())
    for context, rows, labels in (("training", parts.X_train, parts.y_train), ("test", parts.X_test, parts.y_test)):
        frame = rows.assign(prdtypecode=labels.to_numpy())
        with muted():
            dataset = mlflow.data.from_pandas(frame, source=redact(str(data_dir)), targets="prdtypecode", name=name,
                                              digest=parts.fingerprint)
        for attempt in range(5):  # jobs starting together on a server race to insert the same dataset
            try:
                mlflow.log_input(dataset, context=context)
                break
            except MlflowException as error:
                if attempt == 4 or "unique" not in str(error).lower():
                    raise
                time.sleep(0.2 * (attempt + 1))
    return name


def comparable_params(config: dict, model_params: dict) -> dict[str, str]:
    """What tells runs apart: the model's name and modality, `model_params` (the groups its recipe
    says people compare: `Recipe.params`), the search, the data and the seed, as strings."""
    model, data = config["model"], config["data"]
    params = {"model.name": model["name"], "modality": model["modality"], "seed": config["seed"],
              "data.dir": data["dir"], "data.max_rows": data.get("max_rows"), "data.test_size": data["test_size"],
              **model_params}
    search = config.get("search") or {}
    params["search.name"] = search.get("name", "none")
    if params["search.name"] != "none":
        params.update({f"search.{k}": v for k, v in search.items()
                       if k in ("cv", "n_iter", "n_trials", "grid_points", "study_name", "storage")})
    return {key: json.dumps(value) if isinstance(value, (list, dict)) else str(value) for key, value in params.items()}


def own_settings(spec: dict, prefix: str) -> dict:
    """A `_target_` block's own arguments (its class and seed aside), as params under `prefix`; a
    block in it by its own (`model.encoder.epochs`), a features block by its name alone."""
    params = {}
    for key, value in spec.items():
        if key in ("_target_", "random_state"):
            continue
        if isinstance(value, dict) and "vectorizers" in value:
            params[f"{prefix}{key}.name"] = value.get("name", "custom")
        elif isinstance(value, dict):
            params.update(own_settings(value, f"{prefix}{key}."))
        else:
            params[f"{prefix}{key}"] = value
    return params
