"""Scikit-learn models over pictures (`model.descriptors`: picture descriptors, or frozen
EfficientNet features): tracked, scored, refitted and registered like a text model; EfficientNet's
with Grad-CAM pictures of what the network looked at for the class its linear head chose."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.base import clone

from rakuten import data, data_pictures, evaluate, model_logging, study, tracking
from rakuten.recipes.base import Fitted, Recipe, with_curves
from rakuten.recipes.job import DataSettings


def over_picture_paths(model) -> bool:
    """A scikit-learn model over `image_path` rows (descriptors then a head, or a network that reads the
    pictures itself), not a Keras network (`model.network`)."""
    return model.modality == "image" and not model.get("network")


def split_pictures(data_settings: DataSettings, seed: int):
    """(the split of the products that have a readable picture, the counts of pictures)."""
    return data_pictures.image_split(data_settings.dir, data_settings.images_dir, data_settings.images_strict,
                            data_settings.max_rows, data_settings.test_size, seed)


def log_counts(counts: data_pictures.ImageCounts) -> None:
    tracking.log_metrics({"images_found": counts.found, "images_missing": counts.missing,
                          "images_unreadable": counts.unreadable, "products_listed": counts.listed})
    print(counts.sentence(), flush=True)


class OverPictures(Recipe):
    """Image models: the products that have a readable picture, split; the counts logged and said."""

    modality = "image"

    def split(self, data_settings: DataSettings, seed: int):
        return split_pictures(data_settings, seed)

    def before_fit(self, job, parts: data.Split, counts) -> None:
        log_counts(counts)


@dataclass(frozen=True)
class PictureSettings:
    """A scikit-learn model over pictures: its unfitted pipeline (descriptors, scaler, head) and
    how many Grad-CAM pictures its run logs."""

    pipeline: object
    gradcam_images: int


def picture_settings(cfg: DictConfig) -> PictureSettings:
    """The picture model of a config (an image model's, or a fusion's image part with its model node)."""
    from hydra.utils import get_class

    from rakuten.features.weights import require
    from rakuten.models import picture_pipeline_from_config

    for part in (cfg.model.get("descriptors"), cfg.model.estimator):
        for module in getattr(get_class(part._target_), "modules", ()) if part else ():
            require(module, f"model={cfg.model.name}")
    return PictureSettings(picture_pipeline_from_config(cfg), int(cfg.model.get("gradcam_images", 0)))


def picture_params(model: dict, config: dict, prefix: str = "model.") -> dict:
    """A picture model's params: its estimator's class and settings, its descriptors' settings, refit."""
    estimator = model["estimator"]
    return {f"{prefix}class": estimator["_target_"].rsplit(".", 1)[-1], **tracking.own_settings(estimator, prefix),
            **tracking.own_settings(model.get("descriptors") or {}, f"{prefix}descriptors."),
            "refit": model.get("refit") or config["refit"]}


class PicturesRecipe(OverPictures):
    refit_allowed = True

    def params(self, config: dict) -> dict:
        return picture_params(config["model"], config)

    def takes(self, model: DictConfig) -> bool:
        return over_picture_paths(model)

    def settings(self, cfg: DictConfig) -> PictureSettings:
        return picture_settings(cfg)

    def cv_pipeline(self, job):
        """The unfitted pipeline each CV fold fits (experiments/cv_folds.py runs chosen folds of it)."""
        return clone(job.settings.pipeline)

    def cross_validate(self, job, parts: data.Split, context, classes) -> dict[str, float]:
        return study.cross_validated(job.cv_folds, parts, lambda rows, labels: study.cross_validate_pipeline(
            self.cv_pipeline(job), rows, labels, job.cv_folds, job.seed))

    def fit_train_part(self, job, parts: data.Split, context, classes) -> Fitted:
        print(f"pictures: describing and fitting {job.model} on {len(parts.X_train):,} pictures ...",
              end=" ", flush=True)
        started = time.perf_counter()
        model = with_curves(clone(job.settings.pipeline)).fit(parts.X_train[["image_path"]], parts.y_train)
        fit_seconds = time.perf_counter() - started
        print(f"{fit_seconds:.1f}s", flush=True)
        return Fitted(model, {"fit_seconds": fit_seconds, "train_rows": len(parts.X_train),
                              "test_rows": len(parts.X_test)})

    def score_test_part(self, job, fitted: Fitted, parts: data.Split, classes):
        started = time.perf_counter()
        predicted = fitted.model.predict(parts.X_test[["image_path"]])
        seconds = time.perf_counter() - started
        figures = {}
        for index, picture, heatmap, code in pipeline_grad_cam_samples(
                fitted.model, parts.X_test["image_path"], job.settings.gradcam_images, job.seed):
            figures[f"gradcam/product_{index}"] = evaluate.plot_gradcam(
                picture, heatmap, f"product {index}: predicted {code}, true {parts.y_test.loc[index]}")
        return predicted, {"predict_seconds": seconds}, figures

    def log_model(self, job, model, fitted: Fitted, parts: data.Split, context):
        return model_logging.log_picture_model(model, parts.X_test[["image_path"]].head(2))


def pipeline_grad_cam_samples(pipeline, paths: pd.Series, count: int, seed: int):
    """(index, picture as the network saw it, heatmap, predicted prdtypecode) for `count` of
    `paths`, where the model is a fine-tuned network, or its descriptors can draw Grad-CAM
    (EfficientNet) and its estimator is linear (the class score's gradient with respect to the
    descriptors is then its weights over the scaler's scales); nothing otherwise."""
    descriptors, scaler, estimator = pipeline.steps[0][1], pipeline.named_steps.get("scale"), pipeline.steps[-1][1]
    chosen = paths.sample(min(max(count, 0), len(paths)), random_state=seed)
    if hasattr(estimator, "grad_cams_of_choice"):  # a fine-tuned network draws its own
        for index, (picture, heatmap, code) in zip(chosen.index, estimator.grad_cams_of_choice(chosen.tolist())):
            yield index, picture, heatmap, code
        return
    if not len(chosen) or not hasattr(descriptors, "grad_cams") or getattr(estimator, "coef_", None) is None:
        return
    predicted = pipeline.predict(pd.DataFrame({"image_path": chosen}))
    weights = estimator.coef_ / (scaler.scale_ if scaler is not None else 1.0)
    if len(weights) == 1:  # two classes: one row of weights, for the second
        weights = np.vstack([-weights[0], weights[0]])
    rows = [int(np.flatnonzero(estimator.classes_ == code)[0]) for code in predicted]
    heatmaps = descriptors.grad_cams(chosen.tolist(), [weights[row] for row in rows])
    for (index, path), heatmap, code in zip(chosen.items(), heatmaps, predicted):
        yield index, descriptors.picture(path), heatmap, code
