"""Text + image fusion: class probabilities of a text model and an image model, combined.

- `late`: p = w * p_text + (1 - w) * p_image, with w chosen on a validation split;
- `stacking`: a logistic regression on the two models' probabilities of the validation products
  (which neither model was trained on: held-out probabilities, like out-of-fold ones).
Products without a picture fall back to the text model.
"""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

METHODS = ("late", "stacking")


def align(proba: np.ndarray, own_classes, classes) -> np.ndarray:
    """Columns of `proba` (in `own_classes` order) placed in `classes` order; absent classes get 0."""
    aligned = np.zeros((len(proba), len(classes)))
    position = {code: number for number, code in enumerate(classes)}
    for column, code in enumerate(own_classes):
        aligned[:, position[int(code)]] = proba[:, column]
    return aligned


def choose_weight(p_text: np.ndarray, p_image: np.ndarray, y, classes, steps: int = 21) -> tuple[float, float]:
    """The text weight w in [0, 1] whose late fusion scores best (weighted F1) on (p, y)."""
    best = (1.0, -1.0)
    for w in np.linspace(0, 1, steps):
        predicted = np.asarray(classes)[np.argmax(w * p_text + (1 - w) * p_image, axis=1)]
        score = f1_score(y, predicted, average="weighted", zero_division=0)
        if score > best[1] + 1e-12:
            best = (float(w), float(score))
    return best


def fit_combiner(method: str, p_text, p_image, y, classes, seed: int = 42) -> dict:
    """What combines the two models: {"method", "weight"} or {"method", "stacker"}."""
    if method == "late":
        weight, score = choose_weight(p_text, p_image, y, classes)
        return {"method": "late", "weight": weight, "validation_f1_weighted": score}
    if method == "stacking":
        stacker = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
        stacker.fit(np.hstack([p_text, p_image]), y)
        return {"method": "stacking", "stacker": stacker}
    raise ValueError(f"fusion method must be one of {METHODS}, got {method!r}")


def combine(combiner: dict, p_text: np.ndarray, p_image: np.ndarray, classes) -> np.ndarray:
    """Fused class probabilities, in `classes` order."""
    if combiner["method"] == "late":
        return combiner["weight"] * p_text + (1 - combiner["weight"]) * p_image
    stacker = combiner["stacker"]
    return align(stacker.predict_proba(np.hstack([p_text, p_image])), stacker.classes_, classes)


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
        from rakuten.pyfunc import PicturePredictor, load_image_predictor

        parts = joblib.load(artifacts["fusion"])
        image = (PicturePredictor(parts["picture_pipeline"]) if "picture_pipeline" in parts
                 else load_image_predictor(artifacts))
        return cls(parts["text_pipeline"], image, parts["combiner"], parts["classes"])

    def proba(self, rows: pd.DataFrame, params: dict) -> np.ndarray:
        from rakuten.pyfunc import text_rows

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


def describe(combiner: dict) -> str:
    if combiner["method"] == "late":
        return json.dumps({"method": "late", "text_weight": combiner["weight"]})
    return json.dumps({"method": "stacking"})
