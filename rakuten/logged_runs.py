"""What a logged run tells the tools that come after it: its config, its model, its test part's predictions.

`predict`, `explain` and `promote` start from a model URI or a run id, never from training code;
`rakuten.recipes.test_part` rebuilds a run's split from the `config.yaml` it logged.
"""

from __future__ import annotations

import mlflow
from omegaconf import DictConfig, OmegaConf

from rakuten import data
from rakuten.model_check import read_model


def run_config(run_id: str) -> DictConfig:
    return OmegaConf.create(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))


def refitted(run_id: str) -> bool:
    """Whether the run's logged model was refitted on every labelled row (its test part included)."""
    return mlflow.get_run(run_id).data.tags.get("refit") == "all"


def model_run_id(model_uri: str) -> str:
    """The run that logged the model behind `model_uri` (runs:/, models:/ name@alias or version)."""
    return mlflow.models.get_model_info(model_uri).run_id


def predict_test_part(model_uri: str, parts: data.Split, retrain: bool = False):
    """Any registered or logged model's predictions of a split's test part, through its own pyfunc.

    `retrain`: the model's recipe (its text pipeline unfitted, params kept) is first trained on
    the split's training part: the way to score a model refitted on rows of this test part.
    """
    from sklearn.base import clone

    inputs = parts.X_test[[c for c in ("designation", "description", "image_path") if c in parts.X_test.columns]]
    model = read_model(model_uri)
    if retrain:
        pipeline = getattr(model.unwrap_python_model(), "pipeline", None)
        if pipeline is None:
            raise ValueError(f"{model_uri} holds no text pipeline to retrain")
        return clone(pipeline).fit(parts.X_train, parts.y_train).predict(inputs)
    return model.predict(inputs)["prdtypecode"].to_numpy()


def score_model(model_uri: str, parts: data.Split, retrain: bool = False) -> float:
    """Weighted F1 of any registered or logged model on a test part (`predict_test_part`)."""
    from rakuten import evaluate

    return evaluate.score(parts.y_test, predict_test_part(model_uri, parts, retrain))["test_f1_weighted"]
