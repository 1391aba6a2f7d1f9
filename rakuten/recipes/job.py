"""One training job's settings, read from its config once (`Job`): what every stage reads.

The config is read in two places only: here (the keys every job has) and in its recipe's
`settings` (its own part: the objects it instantiates, the keys its models need). Below them no
function takes the config: a split, a fit, a registration reads typed attributes. The keys read
here have no fallback in code (`conf/` holds their defaults): a missing one is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from rakuten import tracking

REGISTER = ("true", "false", "always")
REFIT = ("all", "none")


@dataclass(frozen=True)
class DataSettings:
    """Where the labelled rows are and how they are split (`conf/data`)."""

    dir: str
    test_size: float | int  # a share of the rows, or a row count
    max_rows: int | None
    images_dir: str | None  # None: <dir>/images/image_train
    images_strict: bool  # a product without a readable picture is an error, not a count


def data_settings(data: DictConfig) -> DataSettings:
    """A config's `data` node, typed (also how a logged run's split is rebuilt)."""
    return DataSettings(str(data.dir), data.test_size, None if data.max_rows is None else int(data.max_rows),
                        None if data.images.dir is None else str(data.images.dir), bool(data.images.strict))


def one_of(key: str, value, allowed: tuple[str, ...]) -> str:
    chosen = str(value).lower()
    if chosen not in allowed:
        words = ", ".join(f"'{word}'" for word in allowed[:-1]) + f" or '{allowed[-1]}'"
        raise ValueError(f"{key} must be {words}, got {value!r}")
    return chosen


class Job:
    """A training job as its config asks it: the model, its recipe's settings, the data, the
    store, and what happens to the model (refit, registration). `recipe` is the one that trains
    the config's model (`rakuten.recipes.recipe_for`); its `settings(cfg)` reads the config's
    model-specific part, after the job's own keys are read and before anything is logged."""

    def __init__(self, cfg: DictConfig, recipe) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)  # as logged: params, config.yaml
        self.model, self.modality = str(cfg.model.name), str(cfg.model.modality)
        self.resampler, self.search = str(cfg.resampler.name), str(cfg.search.name)
        self.features = str(cfg.features.get("name", "custom"))
        self.data = data_settings(cfg.data)
        self.seed = int(cfg.seed)
        self.cv_folds = None if cfg.cv.folds is None else int(cfg.cv.folds)
        # a model whose fit takes minutes says it is not refitted (model.refit: none): a network fine-tuned again
        self.refit = one_of("model.refit", cfg.model.refit, REFIT) if "refit" in cfg.model else \
            one_of("refit", cfg.refit, REFIT)
        self.register = one_of("register", cfg.register, REGISTER)
        self.fast_budget_ms = float(cfg.fast_budget_ms)
        self.require_significant_gain = bool(cfg.registry.require_significant_gain)
        self.cache_dir = str(cfg.cache.dir) if cfg.cache.enabled else None
        self.n_jobs = cfg.n_jobs
        self.tracking_uri, self.experiment = cfg.mlflow.tracking_uri, str(cfg.mlflow.experiment)
        self.retry_seconds = float(cfg.mlflow.retry_seconds)
        self.sweep = sweep_of_hydra()
        self.recipe = recipe
        self.params = tracking.comparable_params(self.config, recipe.params(self.config))  # what runs compare
        self.settings = recipe.settings(cfg)  # last: it checks the extras, then instantiates


@dataclass(frozen=True)
class Sweep:
    """The Hydra multirun a job belongs to: its folder and the job's own overrides."""

    dir: str
    overrides: str


def sweep_of_hydra() -> Sweep | None:
    """The multirun this process's job is part of, or None (a single run, a notebook, a test)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    return Sweep(str(hydra.sweep.dir), " ".join(hydra.overrides.task) or "(defaults)")
