"""Text models: features (fitted once per split and config, from the cache), then the head
(resampler and estimator), optionally searched; refitted on every labelled row."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone

from rakuten import data, model_logging, search, study, tracking
from rakuten.models import TextSettings, assemble, features_from_config, head_from_config
from rakuten.recipes.base import Fitted, Recipe, with_curves
from rakuten.recipes.job import DataSettings


def text_settings(cfg: DictConfig) -> TextSettings:
    """The text part of a config (a text model's, or a fusion's text model with its model node)."""
    from rakuten.features.pretrained import SentenceEmbedding
    from rakuten.features.weights import require

    embedding, space = cfg.features.get("embedding"), cfg.model.get("search_space")
    if embedding:  # the extra its embedding imports, named before anything is instantiated
        chosen = {key: embedding[key] for key in ("encoder", "engine") if key in embedding}
        for module in SentenceEmbedding(**chosen).modules:
            require(module, f"features={cfg.features.get('name', 'custom')}")
    return TextSettings(
        features_from_config(cfg), head_from_config(cfg),
        {"features": OmegaConf.to_container(cfg.features, resolve=True), "max_features": cfg.model.get("max_features")},
        OmegaConf.to_container(cfg.search, resolve=True), OmegaConf.to_container(space, resolve=True) if space else {})


@dataclass(frozen=True)
class TextState:
    """What `fit` hands to `score`: the fitted head and the cached test features."""

    head: object
    test_matrix: object


def text_params(model: dict, config: dict, prefix: str = "model.") -> dict:
    """A text model's params: its estimator's class (short) and own hyperparameters (`model.C`),
    calibration, refit, CV, the resampler and its settings, the features and their key settings."""
    estimator = model["estimator"]
    params = {f"{prefix}class": estimator["_target_"].rsplit(".", 1)[-1], **tracking.own_settings(estimator, prefix),
              f"{prefix}calibrate": model.get("calibrate", False), f"{prefix}max_features": model.get("max_features")}
    if "calibration_ensemble" in model:
        params[f"{prefix}calibration_ensemble"] = model["calibration_ensemble"]
    params["refit"] = model.get("refit") or config["refit"]
    if (config.get("cv") or {}).get("folds"):
        params["cv.folds"] = config["cv"]["folds"]
    resampler = config["resampler"]
    params["resampler.name"] = resampler["name"]
    params.update(tracking.own_settings(resampler.get("sampler") or {}, "resampler."))
    features = config["features"]
    params.update({"features.name": features.get("name", "custom"),
                   "features.vectorizers": ",".join(features.get("vectorizers") or {}),
                   "features.normalizer": (features.get("cleaning") or {}).get("normalizer")})
    params.update({f"features.embedding.{k}": v for k, v in (features.get("embedding") or {}).items()})
    return params


class TextRecipe(Recipe):
    modality = "text"
    refit_allowed = True

    def params(self, config: dict) -> dict:
        return text_params(config["model"], config)

    def settings(self, cfg: DictConfig) -> TextSettings:
        return text_settings(cfg)

    def choices(self, job) -> tuple[str, ...]:
        return job.resampler, job.search

    def split(self, data_settings: DataSettings, seed: int):
        return data.text_split(data_settings.dir, data_settings.max_rows, data_settings.test_size, seed), None

    def cv_pipeline(self, job):
        """The unfitted pipeline each CV fold fits (experiments/cv_folds.py runs chosen folds of it)."""
        return job.settings.pipeline()

    def cross_validate(self, job, parts: data.Split, context, classes) -> dict[str, float]:
        return study.cross_validated(job.cv_folds, parts, lambda rows, labels: study.cross_validate_pipeline(
            self.cv_pipeline(job), rows, labels, job.cv_folds, job.seed))

    def fit_train_part(self, job, parts: data.Split, context, classes) -> Fitted:
        from rakuten.features.cache import cache_key, fit_features

        settings: TextSettings = job.settings
        head = with_curves(clone(settings.head))
        print(f"features: {job.features} on {len(parts.X_train):,} training rows ...", end=" ", flush=True)
        cached = fit_features(clone(settings.features), parts.X_train, parts.X_test,
                              cache_key(parts.fingerprint, settings.features_key), job.cache_dir)
        print(f"{'from the cache' if cached.cache_hit else 'fitted'} in {cached.seconds:.1f}s; fitting {job.model}",
              flush=True)
        started = time.perf_counter()
        if job.search == "none":
            head.fit(cached.train, parts.y_train)
        else:
            result = search.run_search(job.search, head, cached.train, parts.y_train, settings.search_space,
                                       settings.search_options, job.seed,
                                       on_candidate=functools.partial(tracking.log_candidate, search=job.search))
            tracking.log_search_result(result)
            head = result.head
        fit_seconds = time.perf_counter() - started
        return Fitted(assemble(cached.transformer, head), {
            "fit_seconds": fit_seconds, "features_seconds": cached.seconds,
            "features_cache_hit": float(cached.cache_hit), "train_rows": len(parts.X_train),
            "test_rows": len(parts.X_test)}, state=TextState(head, cached.test))

    def score_test_part(self, job, fitted: Fitted, parts: data.Split, classes):
        started = time.perf_counter()
        predicted = fitted.state.head.predict(fitted.state.test_matrix)  # the cached test features
        return predicted, {"predict_seconds": time.perf_counter() - started}, {}

    def log_model(self, job, model, fitted: Fitted, parts: data.Split, context):
        return model_logging.log_text_model(model, parts.X_test[["designation", "description"]].head(3))

