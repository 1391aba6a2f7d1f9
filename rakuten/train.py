"""Train one model from config and track it: `python -m rakuten.train model=linearsvc`.

load -> split -> fit -> evaluate -> log -> register/promote. This module only wires the stages;
each stage lives in its own module.
"""

from __future__ import annotations

import logging
import sys
import time

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT, data, evaluate, promote, runs, search, track

log = logging.getLogger("rakuten.train")

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)

# Mistakes in the data or the command line: reported in one line, exit code 2. Anything else is a
# bug and keeps its traceback. Either way the run, if it had started, is ended FAILED.
USER_ERRORS = (data.DataError, track.TrackingError, InstantiationException, ValueError)


def compose_config(*overrides: str) -> DictConfig:
    """The config that `python -m rakuten.train <overrides>` runs with (for notebooks, benchmarks, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run(cfg: DictConfig) -> float:
    """One tracked training job; returns the test weighted F1."""
    from rakuten.features.cache import cache_key, fit_features
    from rakuten.models import assemble, features_from_config, head_from_config

    track.connect(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
    products, labels = data.load_labelled(cfg.data.dir, cfg.data.max_rows, cfg.seed)
    parts = data.split(products, labels, cfg.data.test_size, cfg.seed)
    features, head = features_from_config(cfg), head_from_config(cfg)
    classes = np.sort(labels.unique())
    tags = {
        "model": cfg.model.name,
        "resampler": cfg.resampler.name,
        "search": cfg.search.name,
        "modality": cfg.model.modality,
        "git_commit": track.git_commit(),
        "data_fingerprint": parts.fingerprint,
        "data_dir": str(cfg.data.dir),
    }
    with track.run(f"{cfg.model.name}-{cfg.resampler.name}", tags, nested_in_env_run=_is_multirun()):
        track.log_config(cfg)
        features_config = {"features": OmegaConf.to_container(cfg.features, resolve=True),
                           "max_features": cfg.model.get("max_features")}
        cached = fit_features(features, parts.X_train, parts.X_test, cache_key(parts.fingerprint, features_config),
                              cfg.cache.dir if cfg.cache.enabled else None)
        started = time.perf_counter()
        if cfg.search.name == "none":
            head.fit(cached.train, parts.y_train)
        else:
            result = search.run_search(
                cfg.search.name, head, cached.train, parts.y_train,
                OmegaConf.to_container(cfg.model.get("search_space") or {}, resolve=True),
                OmegaConf.to_container(cfg.search, resolve=True), cfg.seed,
                on_candidate=lambda candidate: track.log_candidate(candidate, cfg.search.name),
            )
            track.log_search_result(result)
            head = result.head
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predicted = head.predict(cached.test)
        predict_seconds = time.perf_counter() - started
        pipeline = assemble(cached.transformer, head)

        metrics = evaluate.score(parts.y_test, predicted)
        report_dict, report_text = evaluate.report(parts.y_test, predicted, classes)
        title = f"{cfg.model.name} + {cfg.resampler.name}: weighted F1 {metrics['test_f1_weighted']:.4f}"
        track.log_evaluation(
            {**metrics, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
             "features_seconds": cached.seconds, "features_cache_hit": float(cached.cache_hit),
             "train_rows": len(parts.X_train), "test_rows": len(parts.X_test)},
            report_dict,
            report_text,
            {
                "confusion_matrix": evaluate.plot_confusion_matrix(parts.y_test, predicted, classes, title),
                "per_class_f1": evaluate.plot_per_class_f1(report_dict, classes, title),
            },
        )
        model_info = track.log_text_model(pipeline, parts.X_test[["designation", "description"]].head(3))
        log.info("%s: test_f1_weighted=%.4f (fit %.1fs, features %.1fs%s)", cfg.model.name,
                 metrics["test_f1_weighted"], fit_seconds, cached.seconds, ", cached" if cached.cache_hit else "")
        if cfg.register:
            _register(cfg, model_info.model_uri, metrics, parts)
    return metrics["test_f1_weighted"]


def _register(cfg: DictConfig, model_uri: str, metrics: dict, parts: data.Split) -> None:
    name = promote.registry_name(cfg.model.modality)
    summary = f"{cfg.model.name} + resampler {cfg.resampler.name}, features {_choice('features')}, data {cfg.data.dir}"
    version = promote.register(model_uri, name, metrics, parts.fingerprint, summary)
    decision = promote.promote_if_better(
        name, str(version.version), metrics["test_f1_weighted"], parts.fingerprint,
        rescore=lambda uri: runs.score_model(uri, parts),
    )
    track.set_tags({"promotion": ("champion: " if decision.promoted else "not champion: ") + decision.reason})
    verb = "is now" if decision.promoted else "is not"
    log.info("%s v%s %s champion: %s", name, version.version, verb, decision.reason)


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _choice(group: str) -> str:
    return HydraConfig.get().runtime.choices.get(group, "?") if HydraConfig.initialized() else "?"


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        return run(cfg)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
