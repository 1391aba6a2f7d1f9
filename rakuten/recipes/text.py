"""Text models: features (fitted once per split and config, from the cache), then the head
(resampler and estimator), optionally searched; refitted on every labelled row."""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf

from rakuten import data, model_logging, search, study, tracking
from rakuten.recipes.base import Fitted, Recipe, cross_validated


class TextRecipe(Recipe):
    modality = "text"
    refits = True

    def choices(self, cfg: DictConfig) -> tuple[str, ...]:
        return cfg.resampler.name, cfg.search.name

    def check_extras(self, cfg: DictConfig) -> None:
        from rakuten.features.pretrained import SentenceEmbedding, require

        embedding = cfg.features.get("embedding")
        if embedding:
            chosen = {key: embedding[key] for key in ("encoder", "engine") if key in embedding}
            for module in SentenceEmbedding(**chosen).modules:
                require(module, f"features={cfg.features.get('name', 'custom')}")

    def split(self, cfg: DictConfig):
        return data.text_split(cfg.data.dir, cfg.data.max_rows, cfg.data.test_size, cfg.seed), None

    def cross_validate(self, cfg: DictConfig, parts: data.Split, context, classes) -> dict[str, float]:
        from rakuten.models import pipeline_from_config

        return cross_validated(cfg, parts, lambda rows, labels: study.cross_validate_pipeline(
            cfg, pipeline_from_config(cfg), rows, labels))

    def fit(self, cfg: DictConfig, parts: data.Split, context, classes) -> Fitted:
        from rakuten.features.cache import cache_key, fit_features
        from rakuten.models import assemble, features_from_config, head_from_config

        features, head = features_from_config(cfg), head_from_config(cfg)
        features_config = {"features": OmegaConf.to_container(cfg.features, resolve=True),
                           "max_features": cfg.model.get("max_features")}
        print(f"features: {cfg.features.get('name', 'custom')} on {len(parts.X_train):,} training rows ...", end=" ",
              flush=True)
        cached = fit_features(features, parts.X_train, parts.X_test, cache_key(parts.fingerprint, features_config),
                              cfg.cache.dir if cfg.cache.enabled else None)
        print(f"{'from the cache' if cached.cache_hit else 'fitted'} in {cached.seconds:.1f}s; fitting {cfg.model.name}",
              flush=True)
        started = time.perf_counter()
        if cfg.search.name == "none":
            head.fit(cached.train, parts.y_train)
        else:
            head = self._search(cfg, head, cached.train, parts.y_train)
        fit_seconds = time.perf_counter() - started
        return Fitted(assemble(cached.transformer, head), {
            "fit_seconds": fit_seconds, "features_seconds": cached.seconds,
            "features_cache_hit": float(cached.cache_hit), "train_rows": len(parts.X_train),
            "test_rows": len(parts.X_test)}, state={"head": head, "test_matrix": cached.test})

    def _search(self, cfg: DictConfig, head, matrix, labels):
        result = search.run_search(
            cfg.search.name, head, matrix, labels,
            OmegaConf.to_container(cfg.model.get("search_space") or {}, resolve=True),
            OmegaConf.to_container(cfg.search, resolve=True), cfg.seed,
            on_candidate=lambda candidate: _candidate(candidate, cfg.search.name))
        tracking.log_search_result(result)
        print(f"best of {len(result.candidates)} candidates: cv_f1_weighted={result.best_score:.4f} "
              f"with {result.best_params}", flush=True)
        if result.study.get("failed_trials"):
            print(f"study {result.study['name']}: {result.study['trials']} trials finished, "
                  f"{result.study['failed_trials']} failed (a worker died or stopped beating)", flush=True)
        return result.head

    def score(self, cfg: DictConfig, fitted: Fitted, parts: data.Split, classes):
        started = time.perf_counter()
        predicted = fitted.state["head"].predict(fitted.state["test_matrix"])  # the cached test features
        return predicted, {"predict_seconds": time.perf_counter() - started}, {}

    def log_model(self, cfg: DictConfig, model, fitted: Fitted, parts: data.Split, context):
        return model_logging.log_text_model(model, parts.X_test[["designation", "description"]].head(3))


def _candidate(candidate, kind: str) -> None:
    tracking.log_candidate(candidate, kind)
    print(f"  {kind} candidate {candidate.number}: cv_f1_weighted={candidate.cv_score:.4f} "
          f"± {candidate.cv_std:.4f}  {candidate.params}", flush=True)
