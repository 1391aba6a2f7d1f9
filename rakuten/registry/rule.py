"""The registry's rule, whole, from plain values: what a candidate does to the registry.

`decide(candidate, contest, policy) -> Action`. The candidate is a trained model (its score on its
test rows, the data it learned from, its measured cost a row); the contest is the champion held
against it on those rows (measured by `rakuten.registry.contest`); the policy is the job's config.
Nothing here talks to MLflow: `rakuten.registry.apply` carries an action out.

| the candidate's data against the champion's | outcome |
| --- | --- |
| no champion (or one that does not load) | takes `champion` |
| **fewer** rows of it (a smoke run, the sample after the full data) | never takes `champion` or `fast` |
| **unknown** (fewer rows of other products, the champion's ids lost) | changes nothing, says what is missing |
| **the same** data | takes `champion` only if its score beats the champion's on its test rows (with `registry.require_significant_gain`, only if the gain's 95% interval lies above zero); else registers only to take `fast` (within the budget, better than every version of that data within it) |
| **other** data | takes `champion` if it beats the champion's recipe retrained on its training rows; else the champion's recipe is trained on the candidate's data by a run of its own (`retrain`), which takes `champion` |

Ties keep the champion. `register=always` registers every candidate, whatever it takes.
`choose_fast` and `best_of` are the rest of the rule: which version `fast` points at, and which
version of one test split a set of concurrent promotions must end on.
"""

from __future__ import annotations

from dataclasses import dataclass

from rakuten.data_of import DataOf
from rakuten.data_identity import FEWER, OTHER, SAME, UNKNOWN
from rakuten.registry.gain import Gain

CHAMPION, FAST = "champion", "fast"


@dataclass(frozen=True)
class Version:
    """A registered version as the rule sees it."""

    number: str
    score: float | None  # its logged test_f1_weighted
    fingerprint: str | None  # the test split it was scored on
    data: DataOf | None  # None: registered before the data was recorded
    row_cost_ms: float | None = None  # measured at registration; None: not measured (it did not load)
    usable: bool = True  # its run finished (or its job is at work) and its model loads


@dataclass(frozen=True)
class Candidate:
    """A trained model asking for a place: a new model (`number` None) or a registered version."""

    score: float
    fingerprint: str
    data: DataOf
    row_cost_ms: float | None = None  # measured on its logged model; None when not measured
    problem: str = ""  # why it does not load, '' when it does
    number: str | None = None


@dataclass(frozen=True)
class Contest:
    """The champion held against the candidate on the candidate's test rows."""

    champion: Version | None  # None: no champion, or one that lost the alias (`lost` says why)
    relation: str = SAME  # the candidate's data against the champion's
    champion_score: float | None = None  # None: it could not be scored; -inf: its recipe cannot be trained there
    where: str = ""  # how the champion's score was had (or why it could not be)
    gain: Gain | None = None  # the candidate's gain over it on the same rows, when both predictions are at hand
    fast_rivals: tuple[Version, ...] = ()  # usable versions of the champion's data within the budget, best first
    lost: str = ""


@dataclass(frozen=True)
class Policy:
    fast_budget_ms: float
    require_significant_gain: bool = False
    register_always: bool = False


@dataclass(frozen=True)
class Action:
    """What the registry does with a candidate."""

    register: bool  # a new version (a registered candidate already is one)
    champion: bool  # it takes `champion`
    reason: str
    fast: bool = False  # registered to take `fast`
    retrain: bool = False  # the champion's recipe is trained on the candidate's data, by a run of its own
    relation: str = SAME
    gain: Gain | None = None


def decide(candidate: Candidate, contest: Contest, policy: Policy) -> Action:
    keep = policy.register_always and candidate.number is None
    holder = contest.champion
    if candidate.problem:
        return Action(keep, False, f"{'v' + candidate.number if candidate.number else 'it'} does not load: "
                                   f"{candidate.problem}")
    if holder is None:
        return Action(candidate.number is None, True, contest.lost or "there was no champion")
    if candidate.number is not None and candidate.number == holder.number:
        return Action(False, True, f"v{holder.number} is already champion")
    if contest.relation == FEWER:
        return Action(keep, False, fewer_rows_reason(candidate.data, holder), relation=FEWER)
    if contest.relation == UNKNOWN:
        return Action(keep, False, unknown_data_reason(candidate.data, holder), relation=UNKNOWN)
    if contest.champion_score is None:  # a champion that cannot be scored here is kept, never replaced
        return Action(keep, False, f"champion v{holder.number} could not be scored on this data: {contest.where}")
    beats = candidate.score > contest.champion_score
    verdict = (f"{candidate.score:.4f} {'beats' if beats else 'does not beat'} champion v{holder.number} "
               f"({contest.champion_score:.4f}, {contest.where})" + (f": {contest.gain.describe()}" if contest.gain else ""))
    if contest.relation == OTHER:
        new_data = (f"on new data ({candidate.data.describe()}; champion v{holder.number} learned from "
                    f"{holder.data.describe() if holder.data else 'other data'}): ")
        if beats:
            return Action(True, True, new_data + verdict, relation=OTHER, gain=contest.gain)
        return Action(keep, False, new_data + verdict, retrain=contest.champion_score != float("-inf"),
                      relation=OTHER, gain=contest.gain)
    if beats and policy.require_significant_gain and contest.gain is not None and not contest.gain.significant:
        beats, verdict = False, verdict + " (registry.require_significant_gain: its interval must lie above zero)"
    if beats:
        return Action(candidate.number is None, True, verdict, gain=contest.gain)
    if candidate.number is None and takes_fast(candidate, contest.fast_rivals, policy.fast_budget_ms):
        return Action(True, False, verdict, fast=True, gain=contest.gain)
    return Action(keep, False, verdict, gain=contest.gain)


def successor() -> Action:
    """The champion's recipe, trained on new data by a run of its own (`Action.retrain`): it serves."""
    return Action(True, True, "the champion's recipe, trained on this data", relation=OTHER)


def takes_fast(candidate: Candidate, rivals: tuple[Version, ...], budget_ms: float) -> bool:
    """Whether a candidate of the champion's data takes `fast`: within the budget, better than every
    version of that data within it (`rivals`, best first)."""
    within = candidate.row_cost_ms is not None and candidate.row_cost_ms <= budget_ms
    return within and (not rivals or candidate.score > (rivals[0].score or float("-inf")))


def same_data(version: Version, holder: Version) -> bool:
    """Whether `version` learned from the data of `holder` (the champion): what `fast` is chosen among."""
    if version.data is None or holder.data is None:
        return version.fingerprint == holder.fingerprint
    return (version.data.population, version.data.rows) == (holder.data.population, holder.data.rows)


def fast_rivals(holder: Version, versions: list[Version], budget_ms: float) -> tuple[Version, ...]:
    """The usable versions of the champion's data within the budget, best first (ties: the oldest)."""
    return tuple(sorted((v for v in versions if v.usable and same_data(v, holder) and v.score is not None
                         and v.row_cost_ms is not None and v.row_cost_ms <= budget_ms),
                        key=lambda v: (-v.score, int(v.number))))


def choose_fast(holder: Version, versions: list[Version], budget_ms: float) -> Version | None:
    """The version `fast` points at: the best of the champion's data within the budget, or none."""
    rivals = fast_rivals(holder, versions, budget_ms)
    return rivals[0] if rivals else None


def best_of(versions: list[Version], fingerprint: str) -> Version | None:
    """The best usable version scored on `fingerprint` (ties: the oldest): where promotions of that
    split converge, whichever of them wrote the alias last."""
    scored = [v for v in versions if v.usable and v.fingerprint == fingerprint and v.score is not None]
    return min(scored, key=lambda v: (-v.score, int(v.number)), default=None)


def fewer_rows_reason(candidate: DataOf, holder: Version) -> str:
    return (f"it learned from {candidate.describe()}, fewer rows of the data of champion v{holder.number} "
            f"({holder.data.describe() if holder.data else '?'}): a smoke run or a subset never takes {CHAMPION} "
            f"or {FAST}")


def unknown_data_reason(candidate: DataOf, holder: Version) -> str:
    return (f"champion v{holder.number}'s run has lost data/population.npy, so whether {candidate.describe()} is "
            f"part of its data ({holder.data.describe() if holder.data else '?'}) cannot be told: {CHAMPION} and "
            f"{FAST} stay. To repair: train again on the champion's data (its new version logs the ids), or move the "
            "alias by hand")
