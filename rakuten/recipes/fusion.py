"""Text + image fusion: both models trained apart, combined on a validation split, scored on the
products that have both beside each part alone; with `cv.folds`, the same on K folds of those
products, for the fused gain's spread (`rakuten.fusion`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from rakuten import data, fusion, model_logging, tracking
from rakuten.recipes.base import Fitted, Recipe


@dataclass(frozen=True)
class FusionData:
    """Products with text, products with a picture, and the split of those that have both."""

    products: pd.DataFrame
    labels: pd.Series
    pictures: pd.DataFrame
    picture_labels: pd.Series
    parts: data.Split
    counts: data.ImageCounts


def fusion_split(data_dir, images_dir, strict, test_size, seed, min_products: int = 50) -> FusionData:
    """The fusion recipe's context: both sets of products, and the split of those with text and picture."""
    products, labels = data.load_labelled(data_dir, None, seed)
    pictures, picture_labels, counts = data.load_images(data_dir, images_dir, strict)
    both = products.index.intersection(pictures.index)
    if len(both) < min_products:
        raise data.DataError(f"only {len(both)} products have both text and a picture in {data_dir}")
    rows = products.loc[both, ["designation", "description"]].join(pictures.loc[both, ["image_path"]])
    return FusionData(products, labels, pictures, picture_labels,
                      data.split(rows, labels.loc[both], test_size, seed), counts)


class FusionRecipe(Recipe):
    modality = "fusion"

    def choices(self, cfg: DictConfig) -> tuple[str, ...]:
        return (cfg.model.method,)

    def check_extras(self, cfg: DictConfig) -> None:
        from rakuten.recipes import recipe_for

        for part in ("text", "image"):  # each part as its own recipe sees it: the config with its model
            whole = OmegaConf.to_container(cfg, resolve=True)
            whole["model"] = whole["model"][part]
            recipe_for(cfg.model[part]).check_extras(OmegaConf.create(whole))

    def split(self, cfg: DictConfig):
        found = fusion_split(cfg.data.dir, cfg.data.images.dir, cfg.data.images.strict, cfg.data.test_size,
                             cfg.seed)
        return found.parts, found

    def classes(self, parts: data.Split, found) -> np.ndarray:
        return np.sort(np.union1d(found.labels.unique(), found.picture_labels.unique()))

    def cross_validate(self, cfg: DictConfig, parts: data.Split, found, classes) -> dict[str, float]:
        print(f"cross-validation: {cfg.cv.folds} folds over the {len(parts.X_train) + len(parts.X_test):,} "
              "products with text and picture ...", flush=True)
        metrics = fusion.cross_validate(fusion_spec(cfg), found, classes, int(cfg.cv.folds))
        print(f"fused {metrics['cv_f1_weighted_mean']:.4f} ± {metrics['cv_f1_weighted_std']:.4f}, text alone "
              f"{metrics['cv_text_only_f1_weighted_mean']:.4f}, gain {metrics['cv_fused_gain_mean']:+.4f} ± "
              f"{metrics['cv_fused_gain_std']:.4f}", flush=True)
        return metrics

    def fit(self, cfg: DictConfig, parts: data.Split, found, classes) -> Fitted:
        started = time.perf_counter()
        fitted = fusion.fit(fusion_spec(cfg, tracking.log_epoch), found, parts.X_train, parts.y_train,
                            parts.X_test.index, classes)
        metrics = {"fit_seconds": time.perf_counter() - started, "test_rows": len(parts.X_test),
                   "validation_rows": fitted.validation_rows, "text_train_rows": fitted.text_rows,
                   "image_train_rows": fitted.image_rows}
        if fitted.combiner["method"] == "late":
            metrics.update(text_weight=fitted.combiner["weight"],
                           validation_f1_weighted=fitted.combiner["validation_f1_weighted"])
        return Fitted(fitted, metrics)

    def score(self, cfg: DictConfig, fitted: Fitted, parts: data.Split, classes):
        scores, predicted = fitted.model.score(parts.X_test, parts.y_test)
        return predicted, {"test_text_only_f1_weighted": scores["text"],
                           "test_image_only_f1_weighted": scores["image"]}, {}

    def log_model(self, cfg: DictConfig, model, fitted: Fitted, parts: data.Split, found):
        example = parts.X_test[["designation", "description", "image_path"]].head(2)
        fused = {"text_pipeline": model.text, "combiner": model.combiner, "classes": [int(c) for c in model.classes]}
        if hasattr(model.image, "model"):  # a Keras network: saved as its own file
            return model_logging.log_fusion_network(model.image.model, model.image.config, example, fused)
        return model_logging.log_fusion_model({**fused, "picture_pipeline": model.image.pipeline}, example)


def fusion_spec(cfg: DictConfig, on_epoch=None) -> fusion.FusionSpec:
    """The fusion of this config: its text part (any text config), its image part (a picture
    pipeline or a network), its combiner; decoded here, once."""
    from rakuten.models import picture_pipeline_from_config, pipeline_from_config
    from rakuten.predictors import ImagePredictor, PicturePredictor

    text_cfg, image_cfg = part_config(cfg, "text"), part_config(cfg, "image")
    augment = OmegaConf.to_container(cfg.augment)

    def image(pictures, labels, classes):
        if image_cfg.model.get("descriptors"):
            return PicturePredictor(picture_pipeline_from_config(image_cfg).fit(pictures[["image_path"]], labels))
        from rakuten import image_models

        network, _, settings = image_models.fit_from_config(image_cfg.model, augment, pictures, labels, classes,
                                                            cfg.seed, on_epoch=on_epoch)
        return ImagePredictor(network, settings)

    return fusion.FusionSpec(lambda: pipeline_from_config(text_cfg), image, cfg.model.method,
                             cfg.model.validation_size, cfg.seed)


def part_config(cfg: DictConfig, part: str) -> DictConfig:
    """The fusion's config with `model` replaced by its text or image part."""
    single = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    single.model = single.model[part]
    return single
