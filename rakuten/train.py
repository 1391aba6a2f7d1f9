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

from rakuten import PROJECT_ROOT, data, evaluate, promote, runs, track

log = logging.getLogger("rakuten.train")

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)

# Mistakes in the data or the command line: reported in one line, exit code 2. Anything else is a
# bug and keeps its traceback. Either way the run, if it had started, is ended FAILED.
USER_ERRORS = (data.DataError, track.TrackingError, InstantiationException, ValueError)


def run(cfg: DictConfig) -> float:
    """One tracked training job; returns the test weighted F1."""
    from rakuten.models import pipeline_from_config

    track.connect(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
    products, labels = data.load_labelled(cfg.data.dir, cfg.data.max_rows, cfg.seed)
    parts = data.split(products, labels, cfg.data.test_size, cfg.seed)
    pipeline = pipeline_from_config(cfg)
    classes = np.sort(labels.unique())
    modality = cfg.model.modality
    tags = {
        "model": cfg.model.name,
        "resampler": cfg.resampler.name,
        "modality": modality,
        "git_commit": track.git_commit(),
        "data_fingerprint": parts.fingerprint,
        "data_dir": str(cfg.data.dir),
    }
    with track.run(f"{cfg.model.name}-{cfg.resampler.name}", tags, nested_in_env_run=_is_multirun()):
        track.log_config(cfg)
        started = time.perf_counter()
        pipeline.fit(parts.X_train, parts.y_train)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predicted = pipeline.predict(parts.X_test)
        predict_seconds = time.perf_counter() - started

        metrics = evaluate.score(parts.y_test, predicted)
        report_dict, report_text = evaluate.report(parts.y_test, predicted, classes)
        title = f"{cfg.model.name} + {cfg.resampler.name}: weighted F1 {metrics['test_f1_weighted']:.4f}"
        track.log_evaluation(
            {**metrics, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
             "train_rows": len(parts.X_train), "test_rows": len(parts.X_test)},
            report_dict,
            report_text,
            {
                "confusion_matrix": evaluate.plot_confusion_matrix(parts.y_test, predicted, classes, title),
                "per_class_f1": evaluate.plot_per_class_f1(report_dict, classes, title),
            },
        )
        model_info = track.log_text_model(pipeline, parts.X_test[["designation", "description"]].head(3))
        log.info("%s: test_f1_weighted=%.4f (fit %.1fs)", cfg.model.name, metrics["test_f1_weighted"], fit_seconds)
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
