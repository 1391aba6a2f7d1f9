"""Keras networks over pictures (the seed's Sequential CNN, smallcnn, ResNet50): trained with their
augmentation, scored, Grad-CAM pictures of what they looked at; the model of the training part is
the one logged (a network fitted twice costs minutes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rakuten import data, evaluate, model_logging, study, tracking
from rakuten.recipes.base import Fitted
from rakuten.recipes.picture_recipe import OverPictures

if TYPE_CHECKING:  # Keras is imported only by the runs that need it
    from rakuten import image_models


@dataclass(frozen=True)
class NetworkSettings:
    """A Keras network as its config asks it, typed: the network (`image_models.Network`: architecture,
    reading, training), its augmentation (the network's own `model.augment`, else the `augment`
    group's) and the Grad-CAM count. The seed is the job's: `fit_train_part` takes it."""

    network: image_models.Network
    augment: dict
    gradcam_images: int

    @property
    def augmentation(self) -> str:
        return str(self.augment["name"])

    def fit(self, pictures, labels, classes, seed: int, on_epoch=None):
        """(a new network fitted on `pictures` (`image_path`), its history, its settings)."""
        from rakuten import image_models

        return image_models.fit_network(self.network.seeded(seed), self.augment, pictures, labels, classes,
                                        on_epoch=on_epoch)


def network_settings(cfg: DictConfig) -> NetworkSettings:
    """The network of a config (an image model's, or a fusion's image part with its model node)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise ValueError(f"model={cfg.model.name} needs TensorFlow, which the text-only install leaves out: "
                         "pip install -e '.[images]'") from error
    model = OmegaConf.to_container(cfg.model, resolve=True)
    augment = augment_of(model, OmegaConf.to_container(cfg.augment, resolve=True))
    from rakuten import image_models

    return NetworkSettings(image_models.Network.of(model), augment, int(model["gradcam_images"]))


def augment_of(model: dict, group: dict) -> dict:
    """A network's augmentation: its own `model.augment` (smallcnn's), else the `augment` group's."""
    return model.get("augment") or group


def network_params(model: dict, config: dict, prefix: str = "model.") -> dict:
    """A network's params: its training settings, its architecture (class and settings), its augmentation."""
    keys = ("image_size", "grayscale", "epochs", "batch_size", "learning_rate", "patience", "weights", "schedule",
            "label_smoothing", "monitor")
    params = {f"{prefix}{k}": model[k] for k in keys if k in model}
    params[f"{prefix}class"] = model["network"]["_target_"].rsplit(".", 1)[-1].removeprefix("build_")
    params.update(tracking.own_settings(model["network"], prefix))
    params["augment.name"] = augment_of(model, config["augment"])["name"]
    return params


class NetworkRecipe(OverPictures):
    def takes(self, model: DictConfig) -> bool:
        return model.modality == "image" and bool(model.get("network"))

    def settings(self, cfg: DictConfig) -> NetworkSettings:
        return network_settings(cfg)

    def params(self, config: dict) -> dict:
        return network_params(config["model"], config)

    def choices(self, job) -> tuple[str, ...]:
        return (job.settings.augmentation,)

    def tags(self, job) -> dict[str, str]:
        return {"augment": job.settings.augmentation}

    def cross_validate(self, job, parts: data.Split, context, classes) -> dict[str, float]:
        fit_network = (lambda rows, labels: job.settings.fit(rows, labels, classes, job.seed))
        return study.cross_validated(job.cv_folds, parts, lambda rows, labels: study.cross_validate_network(
            fit_network, rows, labels, classes, job.cv_folds, job.seed))

    def fit_train_part(self, job, parts: data.Split, context, classes) -> Fitted:
        started = time.perf_counter()
        network, history, settings = job.settings.fit(parts.X_train, parts.y_train, classes, job.seed,
                                                      on_epoch=tracking.log_epoch)
        return Fitted(network, {"fit_seconds": time.perf_counter() - started, "epochs": len(history["loss"]),
                                "train_accuracy": history["accuracy"][-1], "train_rows": len(parts.X_train),
                                "test_rows": len(parts.X_test)},
                      {"learning_curve": evaluate.plot_learning_curve(history, f"{job.model}: learning curve")},
                      state=settings)

    def score_test_part(self, job, fitted: Fitted, parts: data.Split, classes):
        from rakuten import image_models

        network, settings = fitted.model, fitted.state  # the network's reading settings (`image_models`)
        started = time.perf_counter()
        proba = image_models.predict_proba(network, settings, parts.X_test["image_path"])
        predicted = classes[np.argmax(proba, axis=1)]
        seconds = time.perf_counter() - started
        figures = {}
        for index, picture, heatmap, code in image_models.grad_cam_samples(
                network, settings, parts.X_test["image_path"], job.settings.gradcam_images, job.seed):
            figures[f"gradcam/product_{index}"] = evaluate.plot_gradcam(
                picture, heatmap, f"product {index}: predicted {code}, true {parts.y_test.loc[index]}")
        return predicted, {"predict_seconds": seconds}, figures

    def log_model(self, job, model, fitted: Fitted, parts: data.Split, context):
        return model_logging.log_image_model(model, fitted.state, parts.X_test[["image_path"]].head(2))
