"""Text + image fusion: class probabilities of a text model and an image model, combined.

- `late`: p = w * p_text + (1 - w) * p_image, with w chosen on a validation split;
- `stacking`: a logistic regression on the two models' probabilities of the validation products
  (which neither model was trained on: held-out probabilities, like out-of-fold ones).
Products without a picture fall back to the text model.

`fit` trains both parts (any text config, any image config) and the combiner for a fusion run,
`cross_validate` does it on K folds of the products that have both.
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


class FittedFusion:
    """A text model, an image model and their combiner, fitted without the held-out products."""

    def __init__(self, text, image, classes, method: str, tuning, seed: int, rows: tuple[int, int]):
        self.text, self.image, self.classes = text, image, classes
        self.text_rows, self.image_rows = rows
        self.validation_rows = len(tuning.X_test)
        self.combiner = fit_combiner(method, *self.probabilities(tuning.X_test), tuning.y_test, classes, seed)

    def probabilities(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        p_text = align(self.text.predict_proba(X), self.text.classes_, self.classes)
        return p_text, align(self.image.proba(X[["image_path"]], {}), self.image.classes, self.classes)

    def score(self, X: pd.DataFrame, y: pd.Series) -> tuple[dict[str, float], np.ndarray]:
        """Weighted F1 of the fusion and of each part alone on (X, y), and the fused predictions
        (each model scores X once)."""
        p_text, p_image = self.probabilities(X)
        predicted = self.classes[np.argmax(combine(self.combiner, p_text, p_image, self.classes), axis=1)]
        scores = {"fused": _f1(y, predicted)}
        for name, p in (("text", p_text), ("image", p_image)):
            scores[name] = _f1(y, self.classes[np.argmax(p, 1)])
        return scores, predicted


def fit(cfg, found, X_both: pd.DataFrame, y_both: pd.Series, held_out, classes, on_epoch=None) -> FittedFusion:
    """Fit both parts on every product of their modality except `held_out` and the validation
    part of (X_both, y_both), then the combiner on that validation part."""
    from omegaconf import OmegaConf

    from rakuten import data
    from rakuten.models import picture_pipeline_from_config, pipeline_from_config
    from rakuten.pyfunc import ImagePredictor, PicturePredictor

    tuning = data.split(X_both, y_both, cfg.model.validation_size, cfg.seed)
    held_out = pd.Index(held_out).union(tuning.X_test.index)  # neither model trains on these
    text_rows = found.products.drop(found.products.index.intersection(held_out))
    text = pipeline_from_config(part_config(cfg, "text")).fit(text_rows, found.labels.loc[text_rows.index])
    pictures = found.pictures.drop(found.pictures.index.intersection(held_out))
    picture_labels = found.picture_labels.loc[pictures.index]
    if cfg.model.image.get("descriptors"):
        image = PicturePredictor(picture_pipeline_from_config(part_config(cfg, "image")).fit(
            pictures[["image_path"]], picture_labels))
    else:
        from rakuten import image_models

        network, _, settings = image_models.fit_from_config(
            cfg.model.image, OmegaConf.to_container(cfg.augment), pictures, picture_labels, classes, cfg.seed,
            on_epoch=on_epoch)
        image = ImagePredictor(network, settings)
    return FittedFusion(text, image, classes, cfg.model.method, tuning, cfg.seed, (len(text_rows), len(pictures)))


def part_config(cfg, part: str):
    """The fusion's config with `model` replaced by its text or image part."""
    from omegaconf import OmegaConf

    single = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    single.model = single.model[part]
    return single


def cross_validate(cfg, found, classes) -> dict[str, float]:
    """K stratified folds (`cv.folds`) of the products that have both: on each, the fusion is
    fitted without the fold and scored on it beside each part alone. Mean and std of each, and of
    the fused gain over text alone (`cv_fused_gain_*`)."""
    from rakuten import study

    rows = pd.concat([found.parts.X_train, found.parts.X_test])
    labels = pd.concat([found.parts.y_train, found.parts.y_test])
    import time

    folds = {"fused": [], "text": [], "image": []}
    fit_seconds, predict_seconds, test_rows = [], [], []
    for train, test in study.folds(cfg.cv.folds, cfg.seed).split(rows, labels):
        started = time.perf_counter()
        fitted = fit(cfg, found, rows.iloc[train], labels.iloc[train], rows.index[test], classes)
        fit_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        scores, _ = fitted.score(rows.iloc[test], labels.iloc[test])
        predict_seconds.append(time.perf_counter() - started)
        test_rows.append(len(test))
        for name, score in scores.items():
            folds[name].append(score)
    gains = np.subtract(folds["fused"], folds["text"])
    metrics = {**study.cv_metrics(folds["fused"], fit_seconds, predict_seconds, test_rows),
               "cv_fused_gain_mean": float(gains.mean()), "cv_fused_gain_std": float(gains.std())}
    for name in ("text", "image"):
        metrics.update({f"cv_{name}_only_f1_weighted_mean": float(np.mean(folds[name])),
                        f"cv_{name}_only_f1_weighted_std": float(np.std(folds[name]))})
    return metrics


def _f1(y, predicted) -> float:
    return float(f1_score(y, predicted, average="weighted", zero_division=0))


def describe(combiner: dict) -> str:
    if combiner["method"] == "late":
        return json.dumps({"method": "late", "text_weight": combiner["weight"]})
    return json.dumps({"method": "stacking"})
