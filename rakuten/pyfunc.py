"""What a logged model is to its users: raw product rows in, `prdtypecode` integers out.

`ProductClassifier` is the pyfunc of every model of the zoo. What it wraps depends on the
artifacts it was logged with:
- `pipeline` (joblib): a text pipeline; rows have `designation` and optionally `description`;
- `keras_model` + `image_config`: an image network; rows have `image_path`, or `imageid` and
  `productid` with `params={"images_dir": ...}`;
- `picture_pipeline` (joblib): a scikit-learn model over picture descriptors; rows as above;
- `fusion` (joblib) + the two above: a text + image fusion; rows have the text columns and an
  `image_path` that may be null (then the text model alone decides).
`predict(df)` returns a DataFrame with `prdtypecode` (int64), indexed like `df`;
`predict(df, params={"return_proba": True, "top_k": k})` adds `probability` and `top_k`.
"""

from __future__ import annotations

import contextlib
import json
import logging

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from rakuten.picture_input import PictureError, picture_rows

LABEL = "prdtypecode"
log = logging.getLogger("rakuten.pyfunc")
_PARAMS = [ParamSpec("return_proba", "boolean", False), ParamSpec("top_k", "long", 3)]
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


class TextPredictor:
    def __init__(self, pipeline):
        from rakuten.workers import ChunkedPipeline

        self.pipeline = pipeline
        self.scorer = ChunkedPipeline(pipeline)  # big batches on every core
        self.classes = np.asarray(pipeline.classes_).astype("int64")

    def predict(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        return np.asarray(self.scorer.predict(text_rows(rows))).astype("int64")

    def proba(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        if not hasattr(self.pipeline, "predict_proba"):
            raise bad_input(f"{type(self.pipeline[-1]).__name__} gives no probabilities; "
                            "train it with model.calibrate=true to get calibrated ones")
        return self.scorer.predict_proba(text_rows(rows))


class PicturePredictor:
    """A scikit-learn pipeline over pictures (`model=imagefeatures`): rows give their pictures as
    an image network's do."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.classes = np.asarray(pipeline.classes_).astype("int64")

    def pictures(self, rows: pd.DataFrame, params: dict) -> pd.DataFrame:
        return pd.DataFrame({"image_path": image_paths(rows)}, index=rows.index)

    def predict(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        return np.asarray(self.pipeline.predict(self.pictures(rows, params))).astype("int64")

    def proba(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        return self.pipeline.predict_proba(self.pictures(rows, params))


class ImagePredictor:
    def __init__(self, model, config: dict):
        self.model = model
        self.config = config
        self.classes = np.asarray(config["classes"]).astype("int64")

    def proba(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        from rakuten.image_models import predict_proba

        return predict_proba(self.model, self.config, image_paths(rows))

    def predict(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        return self.classes[np.argmax(self.proba(rows, params), axis=1)]


class ProductClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        artifacts = context.artifacts
        if "pipeline" in artifacts:
            self.predictor = TextPredictor(joblib.load(artifacts["pipeline"]))
            self.pipeline = self.predictor.pipeline  # for rakuten.explain
        elif "picture_pipeline" in artifacts:
            self.predictor = PicturePredictor(joblib.load(artifacts["picture_pipeline"]))
            self.pipeline = self.predictor.pipeline
        elif "fusion" in artifacts:
            from rakuten.fusion import FusionPredictor

            self.predictor = FusionPredictor.load(artifacts)
        else:
            self.predictor = load_image_predictor(artifacts)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Errors are MlflowExceptions with a message: a scoring server answers them without a
        stack trace (which would show its paths); the trace goes to the server's log."""
        rows = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        params = params or {}
        try:
            if rows.empty:
                return empty_result(rows.index, bool(params.get("return_proba")))
            reading = (picture_rows(rows, params.get("images_dir") or "") if not isinstance(self.predictor, TextPredictor)
                       else contextlib.nullcontext(rows))
            with reading as rows:
                if not params.get("return_proba"):
                    return pd.DataFrame({LABEL: self.predictor.predict(rows, params)}, index=rows.index)
                return with_top_k(self.predictor.proba(rows, params), self.predictor.classes, rows.index,
                                  int(params.get("top_k", 3)))
        except MlflowException:
            raise
        except PictureError as error:
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


def load_image_predictor(artifacts: dict) -> ImagePredictor:
    import keras

    with open(artifacts["image_config"]) as handle:
        config = json.load(handle)
    return ImagePredictor(keras.models.load_model(artifacts["keras_model"], compile=False), config)


def with_top_k(proba: np.ndarray, classes: np.ndarray, index, top_k: int) -> pd.DataFrame:
    order = np.argsort(-proba, axis=1)[:, : max(1, top_k)]
    best = order[:, 0]
    return pd.DataFrame(
        {
            LABEL: classes[best],
            "probability": proba[np.arange(len(proba)), best],
            "top_k": [[{LABEL: int(classes[j]), "probability": float(p[j])} for j in row]
                      for p, row in zip(proba, order)],
        },
        index=index,
    )


def text_rows(model_input: pd.DataFrame) -> pd.DataFrame:
    """`designation` (text, required) and `description` (text; null or missing is empty) as strings.
    A value of another type (a number, a list, an object, a null designation) is refused, naming
    the column and the first such row."""
    if "designation" not in model_input.columns:
        raise bad_input(f"product rows need a 'designation' column (got {list(model_input.columns)})")
    rows = model_input.copy()
    if "description" not in rows.columns:
        rows["description"] = ""
    for column, nullable in (("designation", False), ("description", True)):
        values = rows[column].astype(object)
        texts = values.map(lambda v: isinstance(v, str))
        nulls = values.isna() & values.map(lambda v: not isinstance(v, (list, dict)))
        bad = ~texts & ~(nulls if nullable else False)
        if bad.any():
            position = int(np.argmax(bad.to_numpy()))
            value = values.iloc[position]
            raise bad_input(f"column '{column}', row {position + 1}: expected text, got "
                            f"{'null' if value is None or value != value else type(value).__name__}")
        rows[column] = values.where(texts, "")
    return rows


def image_paths(rows: pd.DataFrame) -> list[str]:
    """The readable picture of every row (rows come through `picture_rows`)."""
    missing = rows["image_path"].isna().to_numpy()
    if missing.any():
        raise bad_input(f"row {int(np.argmax(missing)) + 1} has no picture (image_b64 or image_path)")
    return rows["image_path"].tolist()


# Models-from-code: MLflow loads this file and takes the model declared here.
mlflow.models.set_model(ProductClassifier())
