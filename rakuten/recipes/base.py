"""The shape every training recipe shares, and the one job that runs it.

`train(job)`: split -> (CV) -> fit -> score -> evaluate and log -> refit -> log the model ->
register and promote -> one summary line. A recipe says only what differs for its models: what
its config holds (`settings`), how its rows are split (`split`), fitted (`fit_train_part`),
scored (`score_test_part`), cross-validated, refit (`refit_all_rows`) and logged. (Not `fit` and
`score`: those are scikit-learn's words for its estimators, which a recipe holds.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from omegaconf import DictConfig

from rakuten import data, evaluate, study, tracking
from rakuten.features.hardware import recorded_placements
from rakuten.multirun import SWEEP_TAG
from rakuten.recipes import registration
from rakuten.recipes.job import DataSettings, Job
from rakuten.recipes.registration import RetrainOrder

log = logging.getLogger("rakuten.train")


@dataclass
class Fitted:
    """What `Recipe.fit_train_part` hands on: the model, its fit metrics, and figures for the run."""

    model: object
    metrics: dict[str, float]
    figures: dict = field(default_factory=dict)
    state: object = None  # what the recipe's `score_test_part` needs beside the model (its own dataclass)


class Recipe:
    """One kind of model's training. Subclasses set `modality` and implement `settings`, `split`,
    `fit_train_part`, `score_test_part` and `log_model`; `cross_validate` and `refit_all_rows` when their models support them.
    `settings(cfg)` (and `params`, from the resolved config) are the methods that read the config:
    every other one reads `job` (a `rakuten.recipes.job.Job`) and `job.settings`, what `settings`
    returned."""

    modality = ""
    refit_allowed = False  # `refit=all` fits the scored recipe again on every labelled row

    def takes(self, model: DictConfig) -> bool:
        return model.modality == self.modality

    def settings(self, cfg: DictConfig):
        """The recipe's own part of the config, typed: raise one line naming the extra to install
        when its objects import a module the install lacks, then instantiate them."""
        raise NotImplementedError

    def params(self, config: dict) -> dict:
        """The groups of `config` (resolved) people compare its runs by, beside the name, data,
        seed and search that every run logs (`tracking.comparable_params`)."""
        return {}

    def choices(self, job) -> tuple[str, ...]:
        """What the run's name says beside the model (resampler, search, augmentation...)."""
        return ()

    def tags(self, job) -> dict[str, str]:
        return {}

    def split(self, data: DataSettings, seed: int):
        """(the labelled rows split in train and test parts, whatever else the recipe needs)."""
        raise NotImplementedError

    def before_fit(self, job, parts: data.Split, context) -> None:
        """Log what the split found (counts of pictures, say)."""

    def cross_validate(self, job, parts: data.Split, context, classes) -> dict[str, float]:
        raise ValueError(f"cv.folds is not supported for model={job.model}")

    def fit_train_part(self, job, parts: data.Split, context, classes) -> Fitted:
        raise NotImplementedError

    def score_test_part(self, job, fitted: Fitted, parts: data.Split, classes) -> tuple[np.ndarray, dict, dict]:
        """(predicted test labels, metrics, figures)."""
        raise NotImplementedError

    def refit_all_rows(self, job, model, parts: data.Split):
        """The scored recipe fitted again on every labelled row (see `refit_on_all_rows`)."""
        return refit_on_all_rows(model, parts)

    def log_model(self, job, model, fitted: Fitted, parts: data.Split, context):
        raise NotImplementedError

    def classes(self, parts: data.Split, context) -> np.ndarray:
        return np.sort(np.union1d(parts.y_train.unique(), parts.y_test.unique()))


@dataclass(frozen=True)
class Trained:
    """What a job ends with: its test weighted F1, and the retraining the registry asked for (None: none)."""

    score: float
    retrain: RetrainOrder | None = None


def train(job: Job, successor_of=None) -> Trained:
    """One tracked training job by its recipe: its model is handed to the registry as a candidate.
    `successor_of`: the champion version whose recipe this job trains on new data (it takes
    `champion`: `registration.install_successor`)."""
    recipe = job.recipe
    name, tags = run_name(job, *recipe.choices(job)), job_tags(job)
    parts, context = recipe.split(job.data, job.seed)
    classes = recipe.classes(parts, context)
    learned_from = parts.learned_from(tracking.dataset_name(job.data.dir, job.modality))
    tags.update({**parts.tags(), **learned_from.tags()})
    retrain = None
    if successor_of is not None:
        tags["retrained_from"] = f"{successor_of.name} v{successor_of.version}"
    with tracking.run(name, tags, nested_in_env_run=job.sweep is not None) as active:
        tracking.log_config(job.config, job.params)
        dataset = tracking.log_datasets(parts, job.data.dir, job.modality)
        tracking.set_runs_view(active.info.experiment_id, dataset)
        recipe.before_fit(job, parts, context)
        with recorded_placements() as placements:
            if job.cv_folds:
                tracking.log_metrics(recipe.cross_validate(job, parts, context, classes))
            fitted = recipe.fit_train_part(job, parts, context, classes)
            predicted, metrics, figures = recipe.score_test_part(job, fitted, parts, classes)
            scores = evaluate_and_log(job, parts.y_test, predicted, classes, {**fitted.metrics, **metrics},
                                      {**fitted.figures, **figures})
            tracking.log_test_predictions(parts.X_test.index, predicted)
            model, refit = fitted.model, recipe.refit_allowed and job.refit == "all"
            if refit:
                model = recipe.refit_all_rows(job, model, parts)
        tracking.log_placements(placements)
        model_info = recipe.log_model(job, model, fitted, parts, context)
        if successor_of is not None:
            decision = registration.install_successor(job, model_info.model_uri, scores, parts, learned_from,
                                                      refit, successor_of)
        elif job.register != "false":
            decision, retrain = registration.propose(job, model_info.model_uri, scores, parts, learned_from,
                                                     predicted, refit)
        else:
            decision = "not registered"
    return Trained(report(active, scores, decision), retrain)


def job_tags(job: Job) -> dict[str, str]:
    """The run's tags of its choices, its recipe's own and its sweep's (its split's: `data.Split.tags`)."""
    tags = {"model": job.model, "resampler": job.resampler, "search": job.search, "modality": job.modality,
            "git_commit": tracking.git_commit(), "data_dir": job.data.dir, **job.recipe.tags(job)}
    if job.sweep is not None:  # how the sweep's summary finds its jobs, and what it calls them
        tags[SWEEP_TAG] = job.sweep.dir
        tags[study.OVERRIDES_TAG] = job.sweep.overrides
    return tags


def evaluate_and_log(job: Job, y_test, predicted, classes, extra_metrics: dict, figures=None) -> dict:
    """Test metrics, per-class report, confusion matrix and per-class F1, the same for every modality."""
    metrics = evaluate.score(y_test, predicted)
    report_dict, report_text = evaluate.report(y_test, predicted, classes)
    metrics = tracking.readable(metrics)  # what the run logs is what the job returns and promotes by
    title = f"{job.model} + {job.resampler}: weighted F1 {metrics['test_f1_weighted']:.4f}"
    tracking.log_evaluation(
        {**metrics, **extra_metrics}, report_dict, report_text,
        {"confusion_matrix": evaluate.plot_confusion_matrix(y_test, predicted, classes, title),
         "per_class_f1": evaluate.plot_per_class_f1(report_dict, classes, title), **(figures or {})})
    return metrics


def refit_on_all_rows(scored, parts: data.Split):
    """The scored pipeline's recipe (best params of a search included) fitted again on every
    labelled row, train and test parts together: the model to deploy. The split's scores stay
    the run's metrics: they are the honest estimate of this recipe."""
    from sklearn.base import clone

    rows, labels = parts.all_rows()
    in_part = hasattr(scored[-1], "refitted")
    print(f"refit: {len(rows):,} rows (train and test parts){', ' + scored[-1].refitted_part if in_part else ''} ...",
          end=" ", flush=True)
    started = time.perf_counter()
    model = refitted_in_part(scored, rows, labels) if in_part else clone(scored).fit(rows, labels)
    seconds = time.perf_counter() - started
    print(f"{seconds:.1f}s", flush=True)
    tracking.set_tags({"refit": "all", "refit_rows": str(len(rows))})
    tracking.log_metrics({"refit_seconds": seconds, "refit_rows": len(rows)})
    return model


def refitted_in_part(scored, rows, labels):
    """`scored` (a pipeline) whose last step refits only what is quick to refit (`refitted`, and
    `refitted_part` says what), the steps before it fitted again on the rows (resamplers do not
    resample here)."""
    from sklearn.base import clone

    front = clone(scored[:-1]).fit(rows, labels)
    last_name, last = scored.steps[-1]
    return type(scored)([*front.steps, (last_name, last.refitted(front.transform(rows), labels))])


def report(active, metrics: dict, decision: str) -> float:
    """The job's one summary line: model, score, run, experiment, champion decision, link."""
    info = tracking.run_info(active.info.run_id)  # as stored: `mlflow run` names its run before the job does
    experiment = tracking.experiment_name(info.experiment_id)
    url = tracking.run_link(tracking.tracking_uri(), info.experiment_id, info.run_id)
    print(f"{info.run_name}: test_f1_weighted={metrics['test_f1_weighted']:.4f} | run {info.run_id[:8]} in "
          f"experiment {experiment} | {decision} | {url}", flush=True)
    return metrics["test_f1_weighted"]


def run_name(job: Job, *choices: str) -> str:
    """Model, the choices that matter (resampler, search, augmentation...) and a short digest of
    every compared param: two runs of different configs never share a name."""
    digest = hashlib.sha1(json.dumps(job.params, sort_keys=True).encode()).hexdigest()[:4]
    return "-".join([job.model, *(c for c in choices if c and c != "none"), digest])


def with_curves(estimator):
    """`estimator` with every network inside it (a fine-tuning's `on_epoch`) logging its epochs as
    the run's steps: the UI draws their curves."""
    for key in estimator.get_params(deep=True):
        if key.endswith("on_epoch"):
            estimator.set_params(**{key: tracking.log_epoch})
    return estimator
