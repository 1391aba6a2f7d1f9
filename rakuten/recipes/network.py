"""Keras networks over pictures (the seed's Sequential CNN, smallcnn, ResNet50): trained with their
augmentation, scored, Grad-CAM pictures of what they looked at; the model of the training part is
the one logged (a network fitted twice costs minutes)."""

from __future__ import annotations

import time

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rakuten import data, evaluate, model_logging, study, tracking
from rakuten.recipes.base import Fitted, cross_validated
from rakuten.recipes.pictures import OverPictures


def augmentation(cfg: DictConfig) -> str:
    return (cfg.model.get("augment") or cfg.augment).name  # a network may bring its own


class NetworkRecipe(OverPictures):
    def takes(self, model: DictConfig) -> bool:
        return model.modality == "image" and not model.get("descriptors")

    def check_extras(self, cfg: DictConfig) -> None:
        try:
            import tensorflow  # noqa: F401
        except ImportError as error:
            raise ValueError(f"model={cfg.model.name} needs TensorFlow, which the text-only install leaves out: "
                             "pip install -e '.[images]'") from error

    def choices(self, cfg: DictConfig) -> tuple[str, ...]:
        return (augmentation(cfg),)

    def tags(self, cfg: DictConfig) -> dict[str, str]:
        return {"augment": augmentation(cfg)}

    def cross_validate(self, cfg: DictConfig, parts: data.Split, context, classes) -> dict[str, float]:
        return cross_validated(cfg, parts, lambda rows, labels: study.cross_validate_network(
            cfg, rows, labels, classes))

    def fit(self, cfg: DictConfig, parts: data.Split, context, classes) -> Fitted:
        from rakuten import image_models

        started = time.perf_counter()
        network, history, settings = image_models.fit_from_config(
            cfg.model, OmegaConf.to_container(cfg.augment), parts.X_train, parts.y_train, classes, cfg.seed,
            on_epoch=tracking.log_epoch)
        return Fitted(network, {"fit_seconds": time.perf_counter() - started, "epochs": len(history["loss"]),
                                "train_accuracy": history["accuracy"][-1], "train_rows": len(parts.X_train),
                                "test_rows": len(parts.X_test)},
                      {"learning_curve": evaluate.plot_learning_curve(history, f"{cfg.model.name}: learning curve")},
                      state={"settings": settings})

    def score(self, cfg: DictConfig, fitted: Fitted, parts: data.Split, classes):
        from rakuten import image_models

        network, settings = fitted.model, fitted.state["settings"]
        started = time.perf_counter()
        proba = image_models.predict_proba(network, settings, parts.X_test["image_path"])
        predicted = classes[np.argmax(proba, axis=1)]
        seconds = time.perf_counter() - started
        figures = {}
        for index, picture, heatmap, code in image_models.grad_cam_samples(
                network, settings, parts.X_test["image_path"], int(cfg.model.gradcam_images), cfg.seed):
            figures[f"gradcam/product_{index}"] = evaluate.plot_gradcam(
                picture, heatmap, f"product {index}: predicted {code}, true {parts.y_test.loc[index]}")
        return predicted, {"predict_seconds": seconds}, figures

    def log_model(self, cfg: DictConfig, model, fitted: Fitted, parts: data.Split, context):
        return model_logging.log_image_model(model, fitted.state["settings"], parts.X_test[["image_path"]].head(2))
