"""One training recipe per kind of model, each with the shape of `base.Recipe` (split, fit, score,
refit, log, register). `rakuten.train` picks the first recipe that takes the config's model: a new
modality or model family is one more module here and one more line in `RECIPES`."""

from __future__ import annotations

from rakuten.recipes.base import Recipe
from rakuten.recipes.fusion import FusionRecipe
from rakuten.recipes.network import NetworkRecipe
from rakuten.recipes.pictures import PicturesRecipe
from rakuten.recipes.text import TextRecipe

RECIPES: tuple[Recipe, ...] = (TextRecipe(), PicturesRecipe(), NetworkRecipe(), FusionRecipe())


def recipe_for(model) -> Recipe:
    """The recipe that trains `model` (a config's `model` node)."""
    for recipe in RECIPES:
        if recipe.takes(model):
            return recipe
    raise ValueError(f"model.modality must be one of text, image, fusion, got {model.get('modality')!r}")
