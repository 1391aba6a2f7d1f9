"""What a logged model is to its users: raw product rows in, `prdtypecode` integers out.

`ProductClassifier` is the pyfunc of every model of the zoo. What it wraps is recorded in the
model's config (`predictor`, `PREDICTORS`), with the artifacts it was logged with:
- `pipeline` (joblib): a text pipeline; rows have `designation` and optionally `description`;
- `keras_model` + `image_config`: an image network; rows have `image_path`, or `imageid` and
  `productid` with `params={"images_dir": ...}`;
- `picture_pipeline` (joblib): a scikit-learn model over picture descriptors; rows as above;
- `fusion` (joblib) + the two above: a text + image fusion; rows have the text columns and an
  `image_path` that may be null (then the text model alone decides).
`predict(df)` returns a DataFrame with `prdtypecode` (int64), indexed like `df`;
`predict(df, params={"return_proba": True, "top_k": k})` adds `probability` and `top_k`;
`params={"return_label": True}` adds `label`, the class's short name (`rakuten.classes`).
"""

from __future__ import annotations

import contextlib
import logging

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from rakuten.classes import class_name
from rakuten.picture_input import PictureError, picture_rows
from rakuten.predictors import (FUSION_ARTIFACT, PICTURE_PART, BadInput, FusionPredictor, PicturePredictor, TextPredictor,
                                load_network_predictor)

LABEL = "prdtypecode"
log = logging.getLogger("rakuten.pyfunc")
_PARAMS = [ParamSpec("return_proba", "boolean", False), ParamSpec("top_k", "long", 3),
           ParamSpec("return_label", "boolean", False)]
_OUTPUT = Schema([ColSpec("long", LABEL)])

TEXT_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "designation"), ColSpec("string", "description", required=False)]),
    outputs=_OUTPUT, params=ParamSchema(_PARAMS),
)
IMAGE_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image_path", required=False), ColSpec("string", "image_b64", required=False),
                   ColSpec("long", "imageid", required=False), ColSpec("long", "productid", required=False)]),
    outputs=_OUTPUT, params=ParamSchema([*_PARAMS, ParamSpec("images_dir", "string", "")]),
)
FUSION_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "designation"), ColSpec("string", "description", required=False),
                   ColSpec("string", "image_path", required=False), ColSpec("string", "image_b64", required=False)]),
    outputs=_OUTPUT, params=ParamSchema(_PARAMS),
)


def bad_input(message: str) -> MlflowException:
    """An error the scoring server answers with a 400 and this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


# what `model_logging` records as the model's `predictor` -> how its artifacts load
PREDICTORS = {
    "text": lambda artifacts: TextPredictor(joblib.load(artifacts["pipeline"])),
    "picture": lambda artifacts: PicturePredictor(joblib.load(artifacts[PICTURE_PART])),
    "fusion": FusionPredictor.load,
    "network": load_network_predictor,
}


def predictor_of(model_config: dict | None, artifacts: dict) -> str:
    """The recorded predictor; a model logged before it was recorded is known by its artifacts."""
    recorded = (model_config or {}).get("predictor")
    if recorded:
        return recorded
    for artifact, predictor in (("pipeline", "text"), (PICTURE_PART, "picture"), (FUSION_ARTIFACT, "fusion")):
        if artifact in artifacts:
            return predictor
    return "network"


class ProductClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.predictor = PREDICTORS[predictor_of(context.model_config, context.artifacts)](context.artifacts)
        if isinstance(self.predictor, (TextPredictor, PicturePredictor)):
            self.pipeline = self.predictor.pipeline  # for rakuten.explain

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Errors are MlflowExceptions with a message: a scoring server answers them without a
        stack trace (which would show its paths); the trace goes to the server's log."""
        rows = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        params = params or {}
        try:
            if len(rows.index) == 0 and len(rows.columns) > 0:  # no column at all: the model's were all missing
                return empty_result(rows.index, bool(params.get("return_proba")))
            reading = (picture_rows(rows, params.get("images_dir") or "") if not isinstance(self.predictor, TextPredictor)
                       else contextlib.nullcontext(rows))
            with reading as rows:
                if not params.get("return_proba"):
                    result = pd.DataFrame({LABEL: self.predictor.predict(rows, params)}, index=rows.index)
                else:
                    top_k = int(params.get("top_k", 3))
                    if top_k < 1:
                        raise bad_input(f"params.top_k={top_k}: the number of classes to return must be at least 1")
                    result = with_top_k(self.predictor.proba(rows, params), self.predictor.classes, rows.index, top_k)
                if params.get("return_label"):
                    result.insert(1, "label", [class_name(code) for code in result[LABEL]])
            if len(result) != len(model_input):  # never fewer (or more) predictions than rows
                raise MlflowException(f"prediction failed: {len(result)} predictions for {len(model_input)} rows",
                                      error_code=INTERNAL_ERROR)
            return result
        except MlflowException:
            raise
        except (PictureError, BadInput) as error:
            raise bad_input(str(error)) from None
        except Exception as error:
            log.exception("prediction failed")
            raise MlflowException(f"prediction failed: {type(error).__name__}: {error}",
                                  error_code=INTERNAL_ERROR) from error


def empty_result(index, with_proba: bool) -> pd.DataFrame:
    """What zero rows are predicted as: the usual columns, no row."""
    columns = {LABEL: pd.Series([], dtype="int64", index=index)}
    if with_proba:
        columns.update(probability=pd.Series([], dtype="float64", index=index),
                       top_k=pd.Series([], dtype=object, index=index))
    return pd.DataFrame(columns)


def with_top_k(proba: np.ndarray, classes: np.ndarray, index, top_k: int) -> pd.DataFrame:
    order = np.argsort(-proba, axis=1)[:, : max(1, top_k)]
    best = order[:, 0]
    return pd.DataFrame(
        {
            LABEL: classes[best],
            "probability": proba[np.arange(len(proba)), best],
            "top_k": [[{LABEL: int(classes[j]), "label": class_name(int(classes[j])), "probability": float(p[j])}
                       for j in row]
                      for p, row in zip(proba, order)],
        },
        index=index,
    )


# Models-from-code: MLflow loads this file and takes the model declared here.
mlflow.models.set_model(ProductClassifier())
