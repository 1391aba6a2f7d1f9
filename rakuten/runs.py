"""What a finished run tells the tools that come after it: its config and its test part.

`predict`, `explain` and `promote` start from a model URI or a run id, never from training code;
they rebuild the run's split from the `config.yaml` it logged.
"""

from __future__ import annotations

import mlflow
from omegaconf import DictConfig, OmegaConf

from rakuten import data


def run_config(run_id: str) -> DictConfig:
    return OmegaConf.create(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))


def test_part(run_id: str) -> data.Split:
    """The run's train/test split, rebuilt from its logged config by the same recipe as training
    (per modality); checked against the fingerprint the run logged."""
    cfg = run_config(run_id)
    modality = cfg.model.get("modality", "text")
    images = cfg.data.get("images") or {}
    if modality == "image":
        parts, _ = data.image_split(cfg.data.dir, images.get("dir"), images.get("strict", False), cfg.data.max_rows,
                                    cfg.data.test_size, cfg.seed)
    elif modality == "fusion":
        parts = data.fusion_split(cfg.data.dir, images.get("dir"), images.get("strict", False), cfg.data.test_size,
                                  cfg.seed).parts
    else:
        parts = data.text_split(cfg.data.dir, cfg.data.max_rows, cfg.data.test_size, cfg.seed)
    logged = mlflow.get_run(run_id).data.tags.get("data_fingerprint")
    if logged and logged != parts.fingerprint:
        raise data.DataError(
            f"the data in {cfg.data.dir} changed since run {run_id} (fingerprint {parts.fingerprint}, logged {logged})"
        )
    return parts


def model_run_id(model_uri: str) -> str:
    """The run that logged the model behind `model_uri` (runs:/, models:/ name@alias or version)."""
    return mlflow.models.get_model_info(model_uri).run_id


def score_model(model_uri: str, parts: data.Split) -> float:
    """Weighted F1 of any registered or logged model on a test part, through its own pyfunc."""
    from rakuten import evaluate

    predicted = mlflow.pyfunc.load_model(model_uri).predict(parts.X_test)["prdtypecode"]
    return evaluate.score(parts.y_test, predicted)["test_f1_weighted"]
