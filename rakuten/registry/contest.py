"""The champion held against a candidate, measured on the candidate's test rows: what the rule reads.

The champion's score on those rows is its logged one when it was scored on the same split, else
the champion is rescored there (its recipe retrained on the split's training rows first when it was
refitted on every row, or when the candidate's data is other than its own: recipe against recipe).
With both models' predictions of the same rows at hand, the gain gets its paired-bootstrap interval.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rakuten import data_identity
from rakuten.data_identity import FEWER, OTHER, SAME, UNKNOWN
from rakuten.model_check import load_problem
from rakuten.registry import versions
from rakuten.registry.gain import paired_bootstrap
from rakuten.registry.rule import Candidate, Contest, fast_rivals
from rakuten.tracking import is_outage, one_line


@dataclass(frozen=True)
class TestRows:
    """The candidate's test rows: labels, ids, the candidate's predictions of them (None: not at hand),
    and `predict(model_uri, retrain)`, another model's predictions of them."""

    y_true: np.ndarray
    ids: np.ndarray
    predicted: np.ndarray | None
    predict: Callable[[str, bool], np.ndarray]


def held_against(name: str, candidate: Candidate, rows: TestRows, budget_ms: float,
                 verify_champion: bool = False) -> Contest:
    """The contest of `candidate` with the champion of `name` (`verify_champion`: a champion whose
    model no longer loads loses the alias, said on stderr)."""
    holder = versions.current_champion(name)
    if holder is None:
        return Contest(None)
    held = versions.as_version(holder)
    problem = load_problem(f"models:/{name}/{held.number}") if verify_champion else ""
    if problem or not held.usable:
        why = f"does not load: {problem}" if problem else "is of a run that did not finish"
        print(f"{name} v{held.number} is champion but {why}", file=sys.stderr)
        return Contest(None, lost=f"champion v{held.number} {why}")
    if candidate.number == held.number:
        return Contest(held)
    relation = data_identity.relation(candidate.data, holder)
    if relation in (FEWER, UNKNOWN):
        return Contest(held, relation)
    score, predictions, where = champion_side(holder, candidate.fingerprint, rows, relation)
    gain = (paired_bootstrap(rows.y_true, rows.predicted, predictions)
            if predictions is not None and rows.predicted is not None and score not in (None, float("-inf")) else None)
    rivals = fast_rivals(held, versions.versions_of(name), budget_ms) if relation == SAME else ()
    return Contest(held, relation, score, where, gain, rivals)


def champion_side(holder, fingerprint: str, rows: TestRows, relation: str) -> tuple[float | None, np.ndarray | None, str]:
    """(the champion's score on the rows, its predictions of them when at hand, how they were had)."""
    from rakuten import evaluate
    from rakuten.tracking import logged_test_predictions

    if holder.tags.get("data_fingerprint") == fingerprint and versions.METRIC in holder.tags:
        return float(holder.tags[versions.METRIC]), logged_test_predictions(holder.run_id, rows.ids), "its logged score"
    retrain = "refit_rows" in holder.tags or relation == OTHER
    try:
        predictions = np.asarray(rows.predict(f"models:/{holder.name}/{holder.version}", retrain))
    except Exception as error:  # noqa: BLE001 - a champion that cannot be scored here is kept (or, on new data, loses)
        if is_outage(error):  # the store did not answer: no verdict on the champion
            raise
        if relation != OTHER:
            return None, None, one_line(error)
        return float("-inf"), None, f"its recipe cannot be trained here: {one_line(error, 200)}"
    score = evaluate.score(rows.y_true, predictions)["test_f1_weighted"]
    return score, predictions, ("its recipe retrained and scored on this split" if retrain else "rescored on this test part")


def memoized(predict: Callable[[str, bool], np.ndarray]) -> Callable[[str, bool], np.ndarray]:
    """`predict` computed once per (model, retrain): a contest asked again under the lock asks the same."""
    seen: dict = {}
    return lambda uri, retrain: seen[(uri, retrain)] if (uri, retrain) in seen else seen.setdefault(
        (uri, retrain), predict(uri, retrain))
