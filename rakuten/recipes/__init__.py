"""One training recipe per kind of model, each with the shape of `base.Recipe` (its settings, split,
fit, score, refit, log). `rakuten.train` picks the first recipe that takes the config's model and
reads the config into a `job.Job` with it: a new modality is one more module here and one more
line in `RECIPES`."""

from __future__ import annotations

import mlflow
from omegaconf import DictConfig, OmegaConf

from rakuten import data, logged_runs, tracking
from rakuten.registry.versions import MODALITIES
from rakuten.recipes.base import Recipe
from rakuten.recipes.fusion_recipe import FusionRecipe
from rakuten.recipes.job import data_settings
from rakuten.recipes.network_recipe import NetworkRecipe
from rakuten.recipes.picture_recipe import PicturesRecipe
from rakuten.recipes.text_recipe import TextRecipe

RECIPES: tuple[Recipe, ...] = (TextRecipe(), PicturesRecipe(), NetworkRecipe(), FusionRecipe())


def recipe_for(model) -> Recipe:
    """The recipe that trains `model` (a config's `model` node)."""
    for recipe in RECIPES:
        if recipe.takes(model):
            return recipe
    raise ValueError(f"model.modality must be one of {', '.join(MODALITIES)}, got {model.get('modality')!r}")


def comparable_params(cfg: DictConfig) -> dict[str, str]:
    """What tells the runs of `cfg` apart: the params every run logs, its recipe's groups among them."""
    config = OmegaConf.to_container(cfg, resolve=True)
    return tracking.comparable_params(config, recipe_for(cfg.model).params(config))


def test_part(run_id: str) -> data.Split:
    """The run's train/test split, rebuilt from its logged config by its own recipe (the one that
    trained it); checked against the fingerprint the run logged."""
    cfg = logged_runs.run_config(run_id)
    parts, _ = recipe_for(cfg.model).split(data_settings(cfg.data), int(cfg.seed))
    logged = mlflow.get_run(run_id).data.tags.get("data_fingerprint")
    if logged and logged != parts.fingerprint:
        raise data.DataError(
            f"the data in {cfg.data.dir} changed since run {run_id} (fingerprint {parts.fingerprint}, logged {logged})"
        )
    return parts
