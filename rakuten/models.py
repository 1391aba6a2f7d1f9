"""The model pipeline: features -> resampler -> estimator, built from config.

An imbalanced-learn Pipeline, so the resampler runs on the training part only (at fit time)
and is skipped at predict time.
"""

from __future__ import annotations

from hydra.utils import instantiate
from imblearn.pipeline import Pipeline
from omegaconf import DictConfig
from sklearn.calibration import CalibratedClassifierCV


def build_pipeline(features, sampler, estimator) -> Pipeline:
    """Chain the three stages; `sampler=None` means no resampling."""
    return Pipeline([("features", features), ("resampler", sampler), ("model", estimator)])


def pipeline_from_config(cfg: DictConfig) -> Pipeline:
    """Instantiate `features`, `resampler.sampler` and `model.estimator` (`_target_` each).

    `model.calibrate=true` wraps the estimator in a 3-fold sigmoid CalibratedClassifierCV, which
    gives probabilities to models that have none (LinearSVC, SGD with hinge loss).
    """
    features = instantiate(cfg.features, max_features=cfg.model.get("max_features"), _convert_="all")
    sampler = instantiate(cfg.resampler.sampler) if cfg.resampler.get("sampler") else None
    estimator = instantiate(cfg.model.estimator, _convert_="all")
    if cfg.model.get("calibrate"):
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", cv=3)
    return build_pipeline(features, sampler, estimator)
