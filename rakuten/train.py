"""Train one model from config and track it: `python -m rakuten.train model=linearsvc`.

This module composes the config, checks it, reads it once into a `Job` with the recipe of its model
(which checks the extras it needs), connects to the store and runs the job (`rakuten.recipes.base.train`:
split, fit, score, refit, log, propose to the registry); then carries out the retraining the registry
asks for on new data (`retrain_once`).
"""

from __future__ import annotations

import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT, config_checks, lifecycle, logged_runs, registry, tracking
from rakuten.cli import error_path
from rakuten.data_of import DataOf
from rakuten.recipes import recipe_for
from rakuten.recipes.base import train
from rakuten.recipes.job import Job
from rakuten.recipes.registration import RetrainOrder

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

    from rakuten.features import item_cache

    recipe = recipe_for(cfg.model)
    config_checks.check(cfg)  # before anything in it is instantiated, printed or logged
    job = Job(cfg, recipe)  # the config read once; below, typed settings (the recipe checks its extras)
    item_cache.use_cache(job.cache_dir)  # each picture, each text once
    tracking.connect(job.tracking_uri, job.experiment, job.retry_seconds)
    with parallel_config(n_jobs=job.n_jobs):  # vectorisers and calibration folds side by side
        trained = train(job)
        if trained.retrain is not None:  # the registry's action on new data: the champion's recipe trained there
            retrain_once(trained.retrain)
    return trained.score


def retrain_once(order: RetrainOrder) -> float | None:
    """`train_champion_recipe`, once per (champion, data) however many jobs ask at the same time: under
    the registry's lock, a job that finds a model of this data already serving says so and trains nothing."""
    holder, mine = order.holder, order.data
    with tracking.registry_lock(holder.name, f"{holder.version}|{mine.population}|{mine.rows}"):
        serving = registry.current_champion(holder.name)
        held = serving and DataOf.of_tags(serving.tags)
        if held and (held.population, held.rows) == (mine.population, mine.rows):
            print(f"{holder.name} v{serving.version} is champion, a model of this data ({held.describe()}): the "
                  f"recipe of v{holder.version} is not trained here again", flush=True)
            return None
        return train_champion_recipe(order.job, holder)


def train_champion_recipe(job: Job, holder) -> float:
    """The champion's recipe (its run's config) trained on the data of `job` by a run of its own,
    registered and made `champion`: the registry ends with a model of the data it will serve."""
    import os

    recipe_cfg = OmegaConf.merge(logged_runs.run_config(holder.run_id), {
        key: job.config[key] for key in ("data", "seed", "cache", "mlflow", "n_jobs", "fast_budget_ms", "registry")
        if key in job.config})
    OmegaConf.update(recipe_cfg, "cv.folds", None, force_add=True)
    config_checks.check(recipe_cfg)  # a logged config is read back from the store: checked like any other
    print(f"training the recipe of {holder.name} v{holder.version} on {job.data.dir} ...", flush=True)
    successor = Job(recipe_cfg, recipe_for(recipe_cfg.model))
    launch = os.environ.pop("MLFLOW_RUN_ID", None)  # a run of its own, not the launch's
    try:
        return train(successor, successor_of=holder).score
    finally:
        if launch is not None:
            os.environ["MLFLOW_RUN_ID"] = launch


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """The job under the commands' error path (`rakuten.cli`); returns the test weighted F1 (what a
    Hydra sweeper optimises). SIGTERM or a second Ctrl-C end the run KILLED at once (exit 143 /
    130), see `rakuten.lifecycle`."""
    tracking.set_console(verbose=bool(cfg.get("verbose", False)))
    with error_path(USER_ERRORS, interrupted="interrupted: the run was ended KILLED") as outcome:
        return lifecycle.run_job(lambda: run(cfg), end_runs=tracking.end_open_runs)
    sys.exit(outcome.code)


def checked_main() -> None:
    """`main`, once the command line holds no password (Hydra writes and prints its overrides) and
    names no run folder outside the working folder unasked."""
    from pathlib import Path

    from rakuten.cli import ExitStatus

    try:
        config_checks.check_command_line(sys.argv[1:])
        config_checks.check_run_folder(sys.argv[1:], Path.cwd())
    except config_checks.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(ExitStatus.USER_ERROR)
    main()


if __name__ == "__main__":
    checked_main()
