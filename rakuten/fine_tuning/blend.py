"""What the data teaches directly and what a fine-tuned encoder learned, together: the probabilities
of a linear model on TF-IDF (and frozen e5 columns) and of a fine-tuned e5, averaged with the
weight that scores best on validation rows of the training part.

Both learn from the same (1 - `validation_size`) of the training rows and are weighed on the rest,
which no part has seen; the linear model (seconds to fit) is then refitted on every training row,
the encoder (minutes an epoch) is kept as it stopped early on those validation rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import f1_score

from rakuten.fine_tuning.epochs import validation_rows

WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)  # the linear model's share, tried on validation rows


class Blend(ClassifierMixin, BaseEstimator):
    def __init__(self, linear, encoder, validation_size: float = 0.1, random_state: int = 0):
        self.linear = linear  # a pipeline over product rows with predict_proba
        self.encoder = encoder  # a FineTunedE5
        self.validation_size = validation_size
        self.random_state = random_state

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(getattr(self.encoder, "requirements", ()))

    def fit(self, X, y):
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        train, held = validation_rows(labels, float(self.validation_size), int(self.random_state))
        rows, val_rows = X.iloc[train], X.iloc[held]
        self.encoder_ = clone(self.encoder).fit(
            rows, labels[train], validation=(val_rows, labels[held]))
        linear = clone(self.linear).fit(rows, labels[train])
        by_linear, by_encoder = _aligned(linear, val_rows, self.classes_), _aligned(self.encoder_, val_rows, self.classes_)
        scores = [f1_score(labels[held], self.classes_[(w * by_linear + (1 - w) * by_encoder).argmax(1)],
                           average="weighted") for w in WEIGHTS]
        self.weight_ = float(WEIGHTS[int(np.argmax(scores))])
        self.validation_f1_ = {f"{w:.1f}": float(s) for w, s in zip(WEIGHTS, scores)}
        print(f"blend: the linear model's weight {self.weight_:.1f} (validation weighted F1 "
              f"{max(scores):.4f}; linear alone {scores[-1]:.4f}, encoder alone {scores[0]:.4f})", flush=True)
        self.linear_ = clone(self.linear).fit(X, labels)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return (self.weight_ * _aligned(self.linear_, X, self.classes_)
                + (1 - self.weight_) * _aligned(self.encoder_, X, self.classes_))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


def _aligned(model, X, classes: np.ndarray) -> np.ndarray:
    """`model`'s probabilities in the columns of `classes` (a class it never saw: 0)."""
    if not hasattr(model, "predict_proba"):  # a calibrated model where a class has a single row
        raise ValueError(f"model.estimator.linear gives no probabilities here ({type(model[-1]).__name__}): "
                         f"too few rows for its calibration folds; use more rows (data.max_rows)")
    proba = model.predict_proba(X)
    aligned = np.zeros((proba.shape[0], len(classes)), proba.dtype)
    aligned[:, np.searchsorted(classes, model.classes_)] = proba
    return aligned
