"""What the data teaches directly and what a fine-tuned encoder learned, together: the probabilities
of a linear model on TF-IDF (and frozen e5 columns) and of a fine-tuned e5 (`model=e5_blend`), or of
a logistic regression on frozen EfficientNet-Lite features and of the fine-tuned network
(`model=efficientnet_blend`), averaged with the weight whose average has the lowest log-loss on
validation rows of the training part.

The log-loss, not the weighted F1: on a few hundred rows F1 is a step function of the weight, flat
within its noise (0.7646-0.7717 over the 11 weights in a fold of 5-fold CV on the shared data, whose
argmax 0 then scored 0.7521 on the fold's test part, the log-loss's 0.5 0.7846), and the encoder's
epoch was chosen on these very rows, which flatters it by F1 more than by a smooth, proper score.

Both learn from the same (1 - `validation_size`) of the training rows and are weighed on the rest,
which no part has seen; the linear model (seconds to fit) is then refitted on every training row,
the encoder (minutes an epoch) is kept as it stopped early on those validation rows. Once the run is
scored, `refit=all` refits the linear model once more, on every labelled row (`refitted`): the
encoder and the weight stay the training part's, so the refit takes seconds, not a second fine-tuning.

`networks` > 1 fine-tunes that many encoders, each from its own seed, and averages them
(`rakuten.fine_tuning.SeedEnsemble`) before the blend weighs them against the linear model.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import f1_score, log_loss

from rakuten.fine_tuning.epochs import validation_rows
from rakuten.fine_tuning.seed_ensemble import SeedEnsemble

WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)  # the linear model's share, tried on validation rows


class Blend(ClassifierMixin, BaseEstimator):
    refitted_part = "the blend's linear model (its fine-tuned encoder and weight kept)"  # what `refitted` refits

    def __init__(self, linear, encoder, validation_size: float = 0.1, random_state: int = 0,
                 weight: float | None = None, networks: int = 1):
        self.linear = linear  # a pipeline over product rows with predict_proba
        self.encoder = encoder  # a fine-tuned network whose fit takes validation=(rows, labels)
        self.validation_size = validation_size
        self.random_state = random_state
        self.weight = weight  # the linear model's share; None: the one of WEIGHTS with the lowest validation log-loss
        self.networks = networks  # encoders fine-tuned, each from its own seed, averaged (SeedEnsemble)

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(getattr(self.encoder, "requirements", ()))

    def fit(self, X, y):
        if self.weight is not None and not 0.0 <= float(self.weight) <= 1.0:
            raise ValueError(f"model.estimator.weight={self.weight}: the linear model's share runs from 0 to 1 (null: chosen)")
        if not isinstance(self.networks, int) or self.networks < 1:
            raise ValueError(f"model.estimator.networks={self.networks!r}: how many encoders to fine-tune, a whole number from 1")
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        train, held = validation_rows(labels, float(self.validation_size), int(self.random_state))
        rows, val_rows = X.iloc[train], X.iloc[held]
        encoder = clone(self.encoder) if self.networks == 1 else SeedEnsemble(self.encoder, self.networks)
        self.encoder_ = encoder.fit(rows, labels[train], validation=(val_rows, labels[held]))
        linear = clone(self.linear).fit(rows, labels[train])
        by_linear, by_encoder = _both(linear, self.encoder_, val_rows, self.classes_)
        mixes = _mixes(by_linear, by_encoder)
        scores = _f1s(mixes, labels[held], self.classes_)
        lowest, losses = lowest_log_loss(mixes, labels[held], self.classes_)
        self.validation_f1_ = {f"{w:.1f}": score for w, score in zip(WEIGHTS, scores)}
        self.validation_log_loss_ = {f"{w:.1f}": loss for w, loss in zip(WEIGHTS, losses)}
        chosen = self.weight is None
        self.weight_ = lowest if chosen else float(self.weight)
        mix = self.weight_ * by_linear + (1 - self.weight_) * by_encoder
        print(f"blend: the linear model's weight {self.weight_:g} ({'chosen' if chosen else 'set'}; on the validation "
              f"rows log-loss {_log_loss(mix, labels[held], self.classes_):.4f}, weighted "
              f"F1 {_f1s([mix], labels[held], self.classes_)[0]:.4f}; linear alone {scores[-1]:.4f}, encoder alone "
              f"{scores[0]:.4f})", flush=True)
        self.linear_ = clone(self.linear).fit(X, labels)
        return self

    def refitted(self, X, y) -> Blend:
        """A copy of this fitted blend whose linear model is fitted again on (X, y), every labelled
        row once the run is scored; the fine-tuned encoder and the weight are kept as they are."""
        labels = np.asarray(y)
        refit = copy.copy(self)
        refit.classes_ = np.union1d(self.classes_, labels)  # a class only the test part had: the encoder gives it 0
        refit.linear_ = clone(self.linear).fit(X, labels)
        return refit

    def predict_proba(self, X) -> np.ndarray:
        by_linear, by_encoder = _both(self.linear_, self.encoder_, X, self.classes_)
        return self.weight_ * by_linear + (1 - self.weight_) * by_encoder

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def grad_cams_of_choice(self, paths: list[str]) -> list[tuple[np.ndarray, np.ndarray, object]]:
        """The fine-tuned network's Grad-CAM of the class the blend chose, for a network over
        pictures (a text encoder has none: AttributeError, as for any model without it)."""
        drawing = self.encoder_.grad_cams_of_choice  # first: a text blend fails here, before predicting
        chosen = self.predict(pd.DataFrame({"image_path": list(paths)}))
        return [(picture, heatmap, code) for (picture, heatmap, _), code in zip(drawing(paths, codes=chosen), chosen)]

    def f1_by_weight(self, X, y) -> dict[str, float]:
        """Weighted F1 on (X, y) of each weight of WEIGHTS: how a fold's test part judges the choice."""
        mixes = _mixes(*_both(self.linear_, self.encoder_, X, self.classes_))
        return {f"{w:.1f}": score for w, score in zip(WEIGHTS, _f1s(mixes, np.asarray(y), self.classes_))}


def _mixes(by_linear: np.ndarray, by_encoder: np.ndarray) -> list[np.ndarray]:
    """The averaged probabilities at each weight of WEIGHTS."""
    return [w * by_linear + (1 - w) * by_encoder for w in WEIGHTS]


def lowest_log_loss(mixes: list[np.ndarray], labels: np.ndarray, classes: np.ndarray) -> tuple[float, list[float]]:
    """(the weight of WEIGHTS whose average in `mixes` has the lowest log-loss on `labels`: the blend's
    rule, each weight's log-loss)."""
    losses = [_log_loss(mix, labels, classes) for mix in mixes]
    return float(WEIGHTS[int(np.argmin(losses))]), losses


def _f1s(mixes: list[np.ndarray], labels: np.ndarray, classes: np.ndarray) -> list[float]:
    return [float(f1_score(labels, classes[mix.argmax(1)], average="weighted")) for mix in mixes]


def _log_loss(mix: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    """Its rows summed to 1 in float64 first: scikit-learn's log_loss refuses float32 rows off 1 by 1e-7."""
    mix = mix.astype(np.float64)
    return float(log_loss(labels, mix / mix.sum(1, keepdims=True), labels=classes))


def _both(linear, encoder, X, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the linear model's, the encoder's) probabilities of X in the columns of `classes`: computed
    together where the encoder shares work with the linear model (a picture network and frozen
    features of its first blocks: `rakuten.fine_tuning.shared_blocks`), else each on its own."""
    beside = getattr(encoder, "probabilities_beside", None)
    together = beside(linear, X) if beside else None
    if together is None:
        return _aligned(linear, X, classes), _aligned(encoder, X, classes)
    return _columns(together[0], linear.classes_, classes), _columns(together[1], encoder.classes_, classes)


def _columns(proba: np.ndarray, model_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """`proba`, whose columns are `model_classes`, in the columns of `classes` (a class it never saw: 0)."""
    aligned = np.zeros((proba.shape[0], len(classes)), proba.dtype)
    aligned[:, np.searchsorted(classes, model_classes)] = proba
    return aligned


def _aligned(model, X, classes: np.ndarray) -> np.ndarray:
    """`model`'s probabilities in the columns of `classes` (a class it never saw: 0)."""
    if not hasattr(model, "predict_proba"):  # a calibrated model where a class has a single row
        raise ValueError(f"model.estimator.linear gives no probabilities here ({type(model[-1]).__name__}): "
                         f"too few rows for its calibration folds; use more rows (data.max_rows)")
    return _columns(model.predict_proba(X), model.classes_, classes)
