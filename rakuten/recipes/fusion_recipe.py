"""Text + image fusion: both models trained apart, combined on a validation split, scored on the
products that have both beside each part alone; with `cv.folds`, the same on K folds of those
products, for the fused gain's spread (`rakuten.fusion`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone

from rakuten import data, data_pictures, fusion, model_logging, tracking
from rakuten.predictors import fusion_parts
from rakuten.recipes.base import Fitted, Recipe
from rakuten.recipes.job import DataSettings
from rakuten.recipes.network_recipe import NetworkSettings, network_params, network_settings
from rakuten.recipes.picture_recipe import PictureSettings, over_picture_paths, picture_params, picture_settings
from rakuten.models import TextSettings
from rakuten.recipes.text_recipe import text_params, text_settings


@dataclass(frozen=True)
class FusionData:
    """Products with text, products with a picture, and the split of those that have both."""

    products: pd.DataFrame
    labels: pd.Series
    pictures: pd.DataFrame
    picture_labels: pd.Series
    parts: data.Split
    counts: data_pictures.ImageCounts


def fusion_split(data_dir, images_dir, strict, test_size, seed, min_products: int = 50) -> FusionData:
    """The fusion recipe's context: both sets of products, and the split of those with text and picture."""
    products, labels = data.load_labelled(data_dir, None, seed)
    pictures, picture_labels, counts = data_pictures.load_images(data_dir, images_dir, strict)
    both = products.index.intersection(pictures.index)
    if len(both) < min_products:
        raise data.DataError(f"only {len(both)} products have both text and a picture in {data_dir}")
    rows = products.loc[both, ["designation", "description"]].join(pictures.loc[both, ["image_path"]])
    return FusionData(products, labels, pictures, picture_labels,
                      data.split(rows, labels.loc[both], test_size, seed), counts)


@dataclass(frozen=True)
class FusionSettings:
    """A fusion as its config asks it: each part's settings (its text model's, its image model's:
    a picture pipeline or a network), the combiner and its validation share."""

    text: TextSettings
    image: PictureSettings | NetworkSettings
    method: str
    validation_size: float


def fusion_settings(cfg: DictConfig) -> FusionSettings:
    """Each part read by its own recipe's reader from the config with `model` replaced by that part."""
    text_cfg, image_cfg = part_config(cfg, "text"), part_config(cfg, "image")
    image = picture_settings(image_cfg) if over_picture_paths(image_cfg.model) else network_settings(image_cfg)
    return FusionSettings(text_settings(text_cfg), image, str(cfg.model.method), float(cfg.model.validation_size))


class FusionRecipe(Recipe):
    modality = "fusion"

    def settings(self, cfg: DictConfig) -> FusionSettings:
        return fusion_settings(cfg)

    def params(self, config: dict) -> dict:
        model = config["model"]
        image_params = network_params if model["image"].get("network") else picture_params
        return {"model.method": model["method"], "model.text": model["text"]["name"],
                "model.image": model["image"]["name"], **text_params(model["text"], config, "model.text."),
                **image_params(model["image"], config, "model.image.")}

    def choices(self, job) -> tuple[str, ...]:
        return (job.settings.method,)

    def split(self, data_settings: DataSettings, seed: int):
        found = fusion_split(data_settings.dir, data_settings.images_dir, data_settings.images_strict,
                             data_settings.test_size, seed)
        return found.parts, found

    def classes(self, parts: data.Split, found) -> np.ndarray:
        return np.sort(np.union1d(found.labels.unique(), found.picture_labels.unique()))

    def cross_validate(self, job, parts: data.Split, found, classes) -> dict[str, float]:
        print(f"cross-validation: {job.cv_folds} folds over the {len(parts.X_train) + len(parts.X_test):,} "
              "products with text and picture ...", flush=True)
        metrics = fusion.cross_validate(fusion_spec(job.settings, job.seed), found, classes, job.cv_folds)
        print(f"fused {metrics['cv_f1_weighted_mean']:.4f} ± {metrics['cv_f1_weighted_std']:.4f}, text alone "
              f"{metrics['cv_text_only_f1_weighted_mean']:.4f}, gain {metrics['cv_fused_gain_mean']:+.4f} ± "
              f"{metrics['cv_fused_gain_std']:.4f}", flush=True)
        return metrics

    def fit_train_part(self, job, parts: data.Split, found, classes) -> Fitted:
        started = time.perf_counter()
        fitted = fusion.fit(fusion_spec(job.settings, job.seed, tracking.log_epoch), found, parts.X_train,
                            parts.y_train, parts.X_test.index, classes)
        metrics = {"fit_seconds": time.perf_counter() - started, "test_rows": len(parts.X_test),
                   "validation_rows": fitted.validation_rows, "text_train_rows": fitted.text_rows,
                   "image_train_rows": fitted.image_rows}
        if fitted.combiner["method"] == "late":
            metrics.update(text_weight=fitted.combiner["weight"],
                           validation_f1_weighted=fitted.combiner["validation_f1_weighted"])
        return Fitted(fitted, metrics)

    def score_test_part(self, job, fitted: Fitted, parts: data.Split, classes):
        scores, predicted = fitted.model.score(parts.X_test, parts.y_test)
        return predicted, {"test_text_only_f1_weighted": scores["text"],
                           "test_image_only_f1_weighted": scores["image"]}, {}

    def log_model(self, job, model, fitted: Fitted, parts: data.Split, found):
        example = parts.X_test[["designation", "description", "image_path"]].head(2)
        if hasattr(model.image, "model"):  # a Keras network: saved as its own file
            fused = fusion_parts(model.text, model.combiner, model.classes)
            return model_logging.log_fusion_network(model.image.model, model.image.config, example, fused)
        return model_logging.log_fusion_model(fusion_parts(model.text, model.combiner, model.classes,
                                                           model.image.pipeline), example)


def fusion_spec(settings: FusionSettings, seed: int, on_epoch=None) -> fusion.FusionSpec:
    """How `rakuten.fusion` makes each part of this fusion: a new text pipeline, an image predictor
    fitted on pictures (a picture pipeline or a network), and how they are combined."""
    from rakuten.predictors import NetworkPredictor, PicturePredictor

    def image(pictures, labels, classes):
        if isinstance(settings.image, PictureSettings):
            return PicturePredictor(clone(settings.image.pipeline).fit(pictures[["image_path"]], labels))
        network, _, reading = settings.image.fit(pictures, labels, classes, seed, on_epoch=on_epoch)
        return NetworkPredictor(network, reading)

    return fusion.FusionSpec(settings.text.pipeline, image, settings.method, settings.validation_size, seed)


def part_config(cfg: DictConfig, part: str) -> DictConfig:
    """The fusion's config with `model` replaced by its text or image part."""
    single = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    single.model = single.model[part]
    return single
