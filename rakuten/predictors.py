"""What a fitted model does with product rows: the predictors behind every model of the zoo.

A predictor holds a fitted model (a text pipeline, a pipeline over pictures, a Keras network, or a
fusion of a text and an image predictor) and answers `predict(rows, params)` (prdtypecode integers)
and `proba(rows, params)` (class probabilities, columns in `classes` order). Rows are raw product
rows; pictures arrive as readable `image_path`s (`rakuten.picture_input` makes them so). Rows a
model cannot take raise `BadInput`, which the MLflow adapter (`rakuten.pyfunc`) answers with a 400.
No MLflow here: fitting code (`rakuten.fusion`, the recipes) and the adapter both stand on this.
"""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd


class BadInput(ValueError):
    """Rows a model cannot take: the message says which column and row to fix."""


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
            raise BadInput(f"{type(self.pipeline[-1]).__name__} gives no probabilities; "
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


class NetworkPredictor:
    """A Keras network over pictures (`sequential`, `smallcnn`, `resnet50`) and how it reads them."""

    def __init__(self, model, config: dict):
        self.model = model
        self.config = config
        self.classes = np.asarray(config["classes"]).astype("int64")

    def proba(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        from rakuten.image_models import predict_proba

        return predict_proba(self.model, self.config, image_paths(rows))

    def predict(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        return self.classes[np.argmax(self.proba(rows, params), axis=1)]


def load_network_predictor(artifacts: dict) -> NetworkPredictor:
    import keras

    with open(artifacts["image_config"]) as handle:
        config = json.load(handle)
    return NetworkPredictor(keras.models.load_model(artifacts["keras_model"], compile=False), config)


def align(proba: np.ndarray, own_classes, classes) -> np.ndarray:
    """Columns of `proba` (in `own_classes` order) placed in `classes` order; absent classes get 0."""
    aligned = np.zeros((len(proba), len(classes)))
    position = {code: number for number, code in enumerate(classes)}
    for column, code in enumerate(own_classes):
        aligned[:, position[int(code)]] = proba[:, column]
    return aligned


def combine(combiner: dict, p_text: np.ndarray, p_image: np.ndarray, classes) -> np.ndarray:
    """Fused class probabilities, in `classes` order."""
    if combiner["method"] == "late":
        return combiner["weight"] * p_text + (1 - combiner["weight"]) * p_image
    stacker = combiner["stacker"]
    return align(stacker.predict_proba(np.hstack([p_text, p_image])), stacker.classes_, classes)


FUSION_ARTIFACT = "fusion"  # a fusion model's joblib file of parts (`fusion_parts`)
TEXT_PART, PICTURE_PART = "text_pipeline", "picture_pipeline"


def fusion_parts(text_pipeline, combiner: dict, classes, picture_pipeline=None) -> dict:
    """What a fusion model saves in `FUSION_ARTIFACT`, as `FusionPredictor.load` reads it: the picture
    pipeline only when the image part is one (a Keras network is saved as its own file)."""
    parts = {TEXT_PART: text_pipeline, "combiner": combiner, "classes": [int(c) for c in classes]}
    return parts if picture_pipeline is None else {**parts, PICTURE_PART: picture_pipeline}


class FusionPredictor:
    """The fused model behind the pyfunc: text pipeline + image network + combiner."""

    def __init__(self, text_pipeline, image_predictor, combiner: dict, classes):
        self.text = text_pipeline
        self.image = image_predictor
        self.combiner = combiner
        self.classes = np.asarray(classes).astype("int64")

    @classmethod
    def load(cls, artifacts: dict) -> FusionPredictor:
        """The image part is a picture-descriptor pipeline saved with the rest, or a Keras network."""
        parts = joblib.load(artifacts[FUSION_ARTIFACT])
        image = (PicturePredictor(parts[PICTURE_PART]) if PICTURE_PART in parts else load_network_predictor(artifacts))
        return cls(parts[TEXT_PART], image, parts["combiner"], parts["classes"])

    def proba(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        fused = align(self.text.predict_proba(text_rows(rows)), self.text.classes_, self.classes)
        if "image_path" in rows.columns:
            pictured = rows["image_path"].notna().to_numpy()
            if pictured.any():
                p_image = align(self.image.proba(rows.loc[pictured, ["image_path"]], params),
                                self.image.classes, self.classes)
                fused[pictured] = combine(self.combiner, fused[pictured], p_image, self.classes)
        return fused

    def predict(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        return self.classes[np.argmax(self.proba(rows, params), axis=1)]


def text_rows(model_input: pd.DataFrame) -> pd.DataFrame:
    """`designation` (text, required) and `description` (text; null or missing is empty) as strings.
    A value of another type (a number, a list, an object, a null designation) is refused, naming
    the column and the first such row."""
    if "designation" not in model_input.columns:
        raise BadInput(f"product rows need a 'designation' column (got {list(model_input.columns)})")
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
            raise BadInput(f"column '{column}', row {position + 1}: expected text, got "
                            f"{'null' if value is None or value != value else type(value).__name__}")
        rows[column] = values.where(texts, "")
    blank = rows["designation"].str.strip() == ""
    if blank.any():  # the rule batch scoring applies (`rakuten.batch.row_problem`): one rule for both
        raise BadInput(f"column 'designation', row {int(np.argmax(blank.to_numpy())) + 1}: empty designation")
    return rows


def image_paths(rows: pd.DataFrame) -> list[str]:
    """The readable picture of every row (rows come through `picture_rows`)."""
    missing = rows["image_path"].isna().to_numpy()
    if missing.any():
        raise BadInput(f"row {int(np.argmax(missing)) + 1} has no picture (image_b64 or image_path)")
    return rows["image_path"].tolist()
