"""A training run's model handed to the registry as a candidate (`rakuten.registry.propose`), and what
the job then says and tags. The rule is the registry's; this module only gathers the run's side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rakuten import data, lifecycle, logged_runs, model_check, registry, tracking
from rakuten.data_of import DataOf
from rakuten.recipes.job import Job


@dataclass(frozen=True)
class RetrainOrder:
    """On new data where the champion's recipe won: its training there, which the command carries out."""

    job: Job
    holder: object  # the MLflow version whose recipe is trained
    data: DataOf  # the candidate's data


def _registration(model_uri: str, metrics: dict, parts: data.Split, learned_from: DataOf, refit: bool,
                  summary: str) -> tuple[registry.Registration, registry.Candidate]:
    """How the run's model is registered, and the candidate it is, measured once: whether it loads
    and predicts its input example, its latency and cost a row (what `fast` is chosen by)."""
    problem, latency, row_cost = model_check.check(model_uri)
    refit_tags = {"refit_rows": str(len(parts.X_train) + len(parts.X_test))} if refit else {}
    registration = registry.Registration(model_uri, metrics, summary, {**refit_tags, **learned_from.tags()},
                                         None if problem else (latency, row_cost))
    return registration, registry.Candidate(metrics[registry.METRIC], parts.fingerprint, learned_from,
                                            None if problem else row_cost, problem)


def propose(job: Job, model_uri: str, metrics: dict, parts: data.Split, learned_from: DataOf, predicted,
            refit: bool = False) -> tuple[str, RetrainOrder | None]:
    """The run's model through the registry's rule (tagged `refit_rows` when `refit` on every row).
    Returns (the decision in words, the retraining the command carries out after this run, or None).

    `register=true` registers only a model that takes `champion` or `fast` (the registry holds the
    models that serve, not every try: `rakuten.promote` registers any logged run later);
    `register=always` registers every run's model."""
    summary = f"{job.model} + resampler {job.resampler}, features {job.features}, data {job.data.dir}"
    registration, candidate = _registration(model_uri, metrics, parts, learned_from, refit, summary)
    name = registry.registry_name(job.modality)
    rows = registry.TestRows(parts.y_test.to_numpy(), parts.X_test.index.to_numpy(), np.asarray(predicted),
                             registry.memoized(lambda uri, retrain: logged_runs.predict_test_part(uri, parts, retrain)))
    policy = registry.Policy(job.fast_budget_ms, job.require_significant_gain, job.register == "always")
    with lifecycle.critical():  # a kill waits: no version registered without its promotion decision
        outcome, action, _ = registry.propose(name, candidate, rows, policy, registration)
    retrain = None
    if action.retrain and (holder := registry.current_champion(name)) is not None:
        retrain = RetrainOrder(job, holder, learned_from)
    if outcome.number is None:
        then = "; the champion's recipe is trained on this data by a run of its own" if retrain else ""
        tracking.set_tags({"promotion": f"not registered: {outcome.reason}"})
        return f"not registered ({outcome.reason}{then}; register=always registers every run)", retrain
    return _said(name, outcome), retrain


def install_successor(job: Job, model_uri: str, metrics: dict, parts: data.Split, learned_from: DataOf, refit: bool,
                      holder) -> str:
    """Register the champion's recipe trained on new data and point `champion` (and `fast`) at it."""
    summary = f"{job.model}: the recipe of champion v{holder.version} trained on {job.data.dir}"
    registration, candidate = _registration(model_uri, metrics, parts, learned_from, refit, summary)
    name = registry.registry_name(job.modality)
    decision = (registry.Contest(registry.versions.as_version(holder)), registry.successor())
    with lifecycle.critical():
        outcome = registry.carry_out(name, candidate, registration, job.fast_budget_ms, decision, lambda: decision)
    return _said(name, outcome, f" (was v{holder.version})")


def _said(name: str, outcome: registry.Outcome, after: str = "") -> str:
    tracking.set_tags({"promotion": ("champion: " if outcome.champion else "not champion: ") + outcome.reason,
                       "fast_alias": outcome.fast})
    verb = "is champion" if outcome.champion else "is not champion"
    return f"{name} v{outcome.number} {verb}: {outcome.reason}{after}; {outcome.fast}"
