"""Scikit-learn models over pictures (`model.descriptors`: picture descriptors, or frozen
EfficientNet features): tracked, scored, refitted and registered like a text model."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from rakuten import data, model_logging, study, tracking
from rakuten.recipes.base import Fitted, Recipe, cross_validated


def split_pictures(cfg: DictConfig):
    """(the split of the products that have a readable picture, the counts of pictures)."""
    return data.image_split(cfg.data.dir, cfg.data.images.dir, cfg.data.images.strict, cfg.data.max_rows,
                            cfg.data.test_size, cfg.seed)


def log_counts(counts: data.ImageCounts) -> None:
    tracking.log_metrics({"images_found": counts.found, "images_missing": counts.missing,
                          "images_unreadable": counts.unreadable, "products_listed": counts.listed})
    print(counts.sentence(), flush=True)


class OverPictures(Recipe):
    """Image models: the products that have a readable picture, split; the counts logged and said."""

    modality = "image"

    def split(self, cfg: DictConfig):
        return split_pictures(cfg)

    def before_fit(self, cfg: DictConfig, parts: data.Split, counts) -> None:
        log_counts(counts)


class PicturesRecipe(OverPictures):
    refits = True

    def takes(self, model: DictConfig) -> bool:
        return model.modality == "image" and bool(model.get("descriptors"))

    def cross_validate(self, cfg: DictConfig, parts: data.Split, context, classes) -> dict[str, float]:
        from rakuten.models import picture_pipeline_from_config

        return cross_validated(cfg, parts, lambda rows, labels: study.cross_validate_pipeline(
            cfg, picture_pipeline_from_config(cfg), rows, labels))

    def fit(self, cfg: DictConfig, parts: data.Split, context, classes) -> Fitted:
        from rakuten.models import picture_pipeline_from_config

        print(f"pictures: describing and fitting {cfg.model.name} on {len(parts.X_train):,} pictures ...",
              end=" ", flush=True)
        started = time.perf_counter()
        model = picture_pipeline_from_config(cfg).fit(parts.X_train[["image_path"]], parts.y_train)
        fit_seconds = time.perf_counter() - started
        print(f"{fit_seconds:.1f}s", flush=True)
        return Fitted(model, {"fit_seconds": fit_seconds, "train_rows": len(parts.X_train),
                              "test_rows": len(parts.X_test)})

    def score(self, cfg: DictConfig, fitted: Fitted, parts: data.Split, classes):
        started = time.perf_counter()
        predicted = fitted.model.predict(parts.X_test[["image_path"]])
        return predicted, {"predict_seconds": time.perf_counter() - started}, {}

    def log_model(self, cfg: DictConfig, model, fitted: Fitted, parts: data.Split, context):
        return model_logging.log_picture_model(model, parts.X_test[["image_path"]].head(2))
