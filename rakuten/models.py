"""The model pipeline: features -> resampler -> estimator, built from config.

An imbalanced-learn Pipeline, so the resampler runs on the training part only (at fit time)
and is skipped at predict time. Training fits the features and the rest (the "head") apart, so
that fitted features can come from the cache; `assemble` joins them into the pipeline users get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hydra.utils import instantiate
from imblearn.pipeline import Pipeline
from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline as SklearnPipeline
from sklearn.utils.metaestimators import available_if


class Calibrated(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """`estimator` with sigmoid-calibrated probabilities (scikit-learn's CalibratedClassifierCV over
    `cv` stratified folds). The folds shrink to the smallest class's size; where a class has a
    single product (tiny samples, the folds of a search) the estimator is fitted alone and gives no
    probabilities, so the run still trains."""

    def __init__(self, estimator, cv: int = 3, ensemble: bool = True):
        self.estimator = estimator
        self.cv = cv
        self.ensemble = ensemble

    def fit(self, X, y):
        folds = min(self.cv, int(np.unique(y, return_counts=True)[1].min()))
        if folds >= 2:
            self.model_ = CalibratedClassifierCV(clone(self.estimator), method="sigmoid", cv=folds,
                                                 ensemble=self.ensemble).fit(X, y)
        else:
            self.model_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.model_.classes_
        for fitted in _linear_models(self.model_):
            # X @ coef_.T wants coef_.T C-ordered: else scipy copies the whole matrix at every
            # call (tens of MB), which is most of the time of a one-row prediction
            fitted.coef_ = np.asfortranarray(fitted.coef_)
        return self

    def predict(self, X):
        return self.model_.predict(X)

    @available_if(lambda self: hasattr(self.model_, "predict_proba"))
    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def _linear_models(model) -> list:
    fitted = [c.estimator for c in getattr(model, "calibrated_classifiers_", [])] or [model]
    return [m for m in fitted if getattr(m, "coef_", None) is not None and m.coef_.ndim == 2]


def build_pipeline(features, sampler, estimator) -> Pipeline:
    """Chain the three stages; `sampler=None` means no resampling."""
    return Pipeline([*_feature_steps(features), ("resampler", sampler), ("model", estimator)])


def build_head(sampler, estimator) -> Pipeline:
    """Resampler and estimator: what is fitted on the feature matrix."""
    return Pipeline([("resampler", sampler), ("model", estimator)])


def assemble(features, head: Pipeline) -> Pipeline:
    """Fitted features + fitted head -> the fitted pipeline over raw product rows."""
    return Pipeline([*_feature_steps(features), *head.steps])


def _feature_steps(features) -> list[tuple[str, object]]:
    """The features' own steps (`fields`, `vectorizers`) when they are a pipeline: an
    imbalanced-learn Pipeline takes no pipeline as a step."""
    return list(features.steps) if isinstance(features, SklearnPipeline) else [("features", features)]


def features_from_config(cfg: DictConfig):
    builder = OmegaConf.masked_copy(cfg.features, [key for key in cfg.features if key != "name"])
    return instantiate(builder, max_features=cfg.model.get("max_features"), _convert_="all")


def head_from_config(cfg: DictConfig) -> Pipeline:
    """Instantiate `resampler.sampler` and `model.estimator` (`_target_` each).

    `model.sklearn_defaults=true` keeps only the estimator's class (and seed): the library's
    default hyperparameters, for comparisons with tuned values. `model.calibrate=true` wraps the
    estimator in `Calibrated` (3-fold sigmoid calibration), which gives probabilities to models
    that have none (LinearSVC, SGD with hinge loss).
    """
    sampler = instantiate(cfg.resampler.sampler) if cfg.resampler.get("sampler") else None
    if cfg.model.get("sklearn_defaults"):
        kept = {k: v for k, v in OmegaConf.to_container(cfg.model.estimator, resolve=True).items()
                if k in ("_target_", "random_state")}
        estimator = instantiate(kept)
    else:
        estimator = instantiate(cfg.model.estimator, _convert_="all")
    if cfg.model.get("calibrate"):
        estimator = Calibrated(estimator, cv=3, ensemble=bool(cfg.model.get("calibration_ensemble", True)))
    return build_head(sampler, estimator)


def picture_pipeline_from_config(cfg: DictConfig) -> Pipeline:
    """A scikit-learn image model: picture descriptors from `image_path` (`model.descriptors`),
    standardised, then the estimator (`model.estimator`, calibrated with `model.calibrate`); or,
    without descriptors, an estimator that reads the pictures itself (a fine-tuned network)."""
    head = head_from_config(cfg)
    if not cfg.model.get("descriptors"):
        return head
    return picture_pipeline(instantiate(cfg.model.descriptors, _convert_="all"), head)


def picture_pipeline(descriptors, estimator) -> Pipeline:
    """Picture descriptors of `image_path` rows, standardised, then `estimator` (a head's steps, or one
    estimator: a blend's frozen part)."""
    from sklearn.preprocessing import StandardScaler

    steps = estimator.steps if isinstance(estimator, SklearnPipeline) else [("model", estimator)]
    return Pipeline([("pictures", descriptors), ("scale", StandardScaler()), *steps])


def pipeline_from_config(cfg: DictConfig) -> Pipeline:
    """The whole unfitted pipeline of a config."""
    return assemble(features_from_config(cfg), head_from_config(cfg))


@dataclass(frozen=True)
class TextSettings:
    """A text model as its config asks it: unfitted features and head (each fit clones them), what
    keys the features' cache entry, and the search over the head."""

    features: object
    head: object
    features_key: dict  # the features' config and max_features: a cache entry per value
    search_options: dict  # `search` (its name, cv, n_iter...)
    search_space: dict  # `model.search_space`

    def pipeline(self):
        """A new unfitted pipeline over product rows (what CV folds and a fusion's text part fit)."""
        return assemble(clone(self.features), clone(self.head))
