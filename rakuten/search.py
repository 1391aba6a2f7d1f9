"""Hyperparameter search: GridSearchCV, scikit-optimize's BayesSearchCV or an Optuna study.

The search runs over the head (resampler + estimator) on the training matrix, with stratified
folds of the training part only; the test part is never seen. The features are fitted once on
the whole training part (cached), so CV scores share its vocabulary and IDF across folds:
slightly optimistic, equal for every candidate, and the test score is untouched by it.

A search space lives in the model's config (`model.search_space`), one entry per estimator
parameter: `{low, high, log}` for numbers (ints when both bounds are ints), `{choices: [...]}`
for categories, and optionally `grid: [...]` for the values a grid search tries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

SEARCHES = ("none", "grid", "bayes", "optuna")  # the `search` group's names


@dataclass
class Candidate:
    number: int
    params: dict
    cv_score: float
    cv_std: float
    fit_seconds: float


@dataclass
class Result:
    best_params: dict
    best_score: float
    head: object  # the head refitted on the whole training part with best_params
    candidates: list[Candidate] = field(default_factory=list)
    study: dict = field(default_factory=dict)  # optuna: the study's name, finished trials, best trial


def _prefix(head) -> str:
    """Where the estimator's parameters live in the head."""
    from rakuten.models import Calibrated

    return "model__estimator__" if isinstance(head["model"], Calibrated) else "model__"


def _is_int(spec: dict) -> bool:
    return isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int)


def grid_values(spec: dict, points: int) -> list:
    """The values a grid search tries for one parameter."""
    if "grid" in spec:
        return list(spec["grid"])
    if "choices" in spec:
        return list(spec["choices"])
    low, high = spec["low"], spec["high"]
    values = np.geomspace(low, high, points) if spec.get("log") else np.linspace(low, high, points)
    if _is_int(spec):
        return sorted({int(round(v)) for v in values})
    return [float(v) for v in values]


def skopt_space(spec: dict):
    from skopt.space import Categorical, Integer, Real

    if "choices" in spec:
        return Categorical(list(spec["choices"]))
    prior = "log-uniform" if spec.get("log") else "uniform"
    if _is_int(spec):
        return Integer(spec["low"], spec["high"], prior=prior)
    return Real(float(spec["low"]), float(spec["high"]), prior=prior)


def optuna_suggest(trial, name: str, spec: dict):
    if "choices" in spec:
        return trial.suggest_categorical(name, list(spec["choices"]))
    if _is_int(spec):
        return trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def run_search(
    search: str,
    head,
    X,
    y,
    space: dict[str, dict],
    options: dict,
    seed: int,
    on_candidate: Callable[[Candidate], None] = lambda candidate: None,
) -> Result:
    """Search `space` for `head` on (X, y); call `on_candidate` for every candidate tried."""
    if search not in SEARCHES or search == "none":
        raise ValueError(f"search must be one of {SEARCHES[1:]}, got {search!r}")
    if not space:
        raise ValueError("this model has no search_space in its config (model.search_space)")
    for key, minimum in (("cv", 2), ("n_trials", 1), ("n_iter", 1), ("grid_points", 1)):
        if key in options and options[key] is not None and int(options[key]) < minimum:
            raise ValueError(f"search.{key}={options[key]} must be at least {minimum}")
    folds = StratifiedKFold(n_splits=int(options.get("cv", 3)), shuffle=True, random_state=seed)
    prefix = _prefix(head)
    scoring = options.get("scoring", "f1_weighted")
    n_jobs = options.get("n_jobs", 1)
    if search == "optuna":
        return _optuna(_Problem(head, X, y, space, prefix, folds, scoring, n_jobs), options, seed, on_candidate)
    if search == "grid":
        grid = {prefix + name: grid_values(spec, int(options.get("grid_points", 4))) for name, spec in space.items()}
        searcher = GridSearchCV(head, grid, cv=folds, scoring=scoring, n_jobs=n_jobs, refit=True,
                                verbose=options.get("verbose", 0))
    else:
        from skopt import BayesSearchCV

        spaces = {prefix + name: skopt_space(spec) for name, spec in space.items()}
        searcher = BayesSearchCV(head, spaces, n_iter=int(options.get("n_iter", 16)), cv=folds, scoring=scoring,
                                 n_jobs=n_jobs, refit=True, random_state=seed, verbose=options.get("verbose", 0))
    searcher.fit(X, y)
    results = searcher.cv_results_
    candidates = []
    for number, params in enumerate(results["params"]):
        candidate = Candidate(
            number, {k.removeprefix(prefix): _plain(v) for k, v in params.items()},
            float(results["mean_test_score"][number]), float(results["std_test_score"][number]),
            float(results["mean_fit_time"][number]),
        )
        on_candidate(candidate)
        candidates.append(candidate)
    best = {k.removeprefix(prefix): _plain(v) for k, v in searcher.best_params_.items()}
    return Result(best, float(searcher.best_score_), searcher.best_estimator_, candidates)


@dataclass(frozen=True)
class _Problem:
    """What a search tries candidates of: the head (its params under `prefix`), the rows, the space,
    and how each candidate is scored (CV `folds`, `scoring`, `n_jobs` processes)."""

    head: object
    X: object
    y: object
    space: dict
    prefix: str
    folds: object
    scoring: str
    n_jobs: object


def _optuna(problem: _Problem, options: dict, seed: int, on_candidate) -> Result:
    import optuna

    head, X, y, space, prefix = problem.head, problem.X, problem.y, problem.space, problem.prefix
    folds, scoring, n_jobs = problem.folds, problem.scoring, problem.n_jobs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _create_study(options, seed)
    candidates = []

    def objective(trial) -> float:
        params = {name: optuna_suggest(trial, name, spec) for name, spec in space.items()}
        candidate_head = clone(head).set_params(**{prefix + k: v for k, v in params.items()})
        started = time.perf_counter()
        scores = cross_val_score(candidate_head, X, y, cv=folds, scoring=scoring, n_jobs=n_jobs)
        candidate = Candidate(trial.number, params, float(scores.mean()), float(scores.std()),
                              (time.perf_counter() - started) / folds.get_n_splits())
        on_candidate(candidate)
        candidates.append(candidate)
        return candidate.cv_score

    study.optimize(objective, n_trials=int(options.get("n_trials", 20)), timeout=options.get("timeout"),
                   show_progress_bar=bool(options.get("progress_bar", True)))
    if options.get("storage"):  # a shared study: workers gone for longer than the grace period
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    # one snapshot of the study (other workers' trials included): the best and the counts agree
    trials = study.trials
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    best_trial = max(finished, key=lambda t: (t.value, -t.number))
    best = dict(best_trial.params)
    refit = clone(head).set_params(**{prefix + k: v for k, v in best.items()}).fit(X, y)
    return Result(best, float(best_trial.value), refit, candidates,
                  study={"name": study.study_name, "trials": len(finished), "best_trial": best_trial.number,
                         "failed_trials": len(failed)})


def _create_study(options: dict, seed: int, attempts: int = 5):
    """The study, created or joined. Workers that start together on a new storage race to create
    its tables and the study: the losers retry and join it."""
    import optuna

    from rakuten.trial_heartbeat import HeartbeatFromStart

    url = options.get("storage")
    for attempt in range(1, attempts + 1):
        try:  # a worker killed mid-trial (or before its first heartbeat): the next worker's trial marks it FAIL
            storage = url and HeartbeatFromStart(url=url, heartbeat_interval=int(options["heartbeat_seconds"]),
                                                 grace_period=int(options["grace_seconds"]))
            return optuna.create_study(
                direction="maximize", storage=storage, study_name=options.get("study_name"), load_if_exists=True,
                # seeded in memory (reproducible); unseeded on a shared storage, or every worker
                # would propose the same points
                sampler=optuna.samplers.TPESampler(seed=None if url else seed),
            )
        except Exception:  # noqa: BLE001 - the storage's integrity errors vary by database
            if attempt == attempts or not url:
                raise
            time.sleep(0.5 * attempt)


def _plain(value):
    """numpy scalars -> Python ones, for MLflow params and JSON."""
    return value.item() if hasattr(value, "item") else value
