"""Text + image fusion: class probabilities of a text model and an image model, combined.

- `late`: p = w * p_text + (1 - w) * p_image, with w chosen on a validation split;
- `stacking`: a logistic regression on the two models' probabilities of the validation products
  (which neither model was trained on: held-out probabilities, like out-of-fold ones).
Products without a picture fall back to the text model.

`fit` trains both parts (any text model, any image model, as its `FusionSpec` makes them) and the
combiner for a fusion run, `cross_validate` does it on K folds of the products that have both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from rakuten.predictors import align, combine

METHODS = ("late", "stacking")


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


@dataclass(frozen=True)
class FusionSpec:
    """A fusion as its recipe decoded it from the config, once: how each part is made, how they are
    combined. `text()` is a new unfitted text pipeline; `image(pictures, labels, classes)` fits an
    image predictor on `image_path` rows."""

    text: Callable[[], object]
    image: Callable[[pd.DataFrame, pd.Series, np.ndarray], object]
    method: str = "late"
    validation_size: float = 0.3
    seed: int = 42


def fit(spec: FusionSpec, found, X_both: pd.DataFrame, y_both: pd.Series, held_out, classes) -> FittedFusion:
    """Fit both parts on every product of their modality except `held_out` and the validation
    part of (X_both, y_both), then the combiner on that validation part."""
    from rakuten import data

    tuning = data.split(X_both, y_both, spec.validation_size, spec.seed)
    held_out = pd.Index(held_out).union(tuning.X_test.index)  # neither model trains on these
    text_rows = found.products.drop(found.products.index.intersection(held_out))
    text = spec.text().fit(text_rows, found.labels.loc[text_rows.index])
    pictures = found.pictures.drop(found.pictures.index.intersection(held_out))
    image = spec.image(pictures, found.picture_labels.loc[pictures.index], classes)
    return FittedFusion(text, image, classes, spec.method, tuning, spec.seed, (len(text_rows), len(pictures)))


def cross_validate(spec: FusionSpec, found, classes, folds: int) -> dict[str, float]:
    """`folds` stratified folds of the products that have both: on each, the fusion is fitted
    without the fold and scored on it beside each part alone. Mean and std of each, and of the
    fused gain over text alone (`cv_fused_gain_*`)."""
    from rakuten import study

    rows, labels = found.parts.all_rows()
    scores_of = {"fused": [], "text": [], "image": []}
    fit_seconds, predict_seconds, test_rows = [], [], []
    for train, test in study.folds(folds, spec.seed).split(rows, labels):
        started = time.perf_counter()
        fitted = fit(spec, found, rows.iloc[train], labels.iloc[train], rows.index[test], classes)
        fit_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        scores, _ = fitted.score(rows.iloc[test], labels.iloc[test])
        predict_seconds.append(time.perf_counter() - started)
        test_rows.append(len(test))
        for name, score in scores.items():
            scores_of[name].append(score)
    gains = np.subtract(scores_of["fused"], scores_of["text"])
    metrics = {**study.cv_metrics(scores_of["fused"], fit_seconds, predict_seconds, test_rows),
               "cv_fused_gain_mean": float(gains.mean()), "cv_fused_gain_std": float(gains.std())}
    for name in ("text", "image"):
        metrics.update({f"cv_{name}_only_f1_weighted_mean": float(np.mean(scores_of[name])),
                        f"cv_{name}_only_f1_weighted_std": float(np.std(scores_of[name]))})
    return metrics


def _f1(y, predicted) -> float:
    return float(f1_score(y, predicted, average="weighted", zero_division=0))
