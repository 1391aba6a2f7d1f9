"""An action of the rule carried out in MLflow, under the registry's lock.

The contest is measured before the lock (rescoring a champion may take minutes); under it, when the
champion has moved meanwhile (another job of this machine promoted), the contest is measured and
decided again. After writing `champion`, the alias is checked against the best version of the same
test split: jobs of other machines, which this lock does not hold, converge on it too. `fast` is then
chosen by the rule (`rule.choose_fast`) among the versions of the champion's data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rakuten import tracking
from rakuten.model_check import load_problem
from rakuten.registry import versions
from rakuten.registry.rule import CHAMPION, FAST, Action, Candidate, Contest, best_of, choose_fast

MAX_REDECISIONS = 3


@dataclass(frozen=True)
class Registration:
    """What registering a new candidate needs."""

    model_uri: str
    metrics: dict
    summary: str
    tags: dict
    measured: tuple[float, float] | None = None  # (latency, cost a row), when already measured


@dataclass(frozen=True)
class Outcome:
    number: str | None  # the candidate's version, None when not registered
    champion: bool  # it holds `champion` at the end
    reason: str
    fast: str  # what `fast` became, in words


def carry_out(name: str, candidate: Candidate, registration: Registration | None, budget_ms: float,
              decision: tuple[Contest, Action], decide_again: Callable[[], tuple[Contest, Action]]) -> Outcome:
    """Register, point `champion` and `fast` as `decision` says, under the registry's lock;
    `decide_again()` (the contest measured and the rule applied anew) when the champion has moved."""
    contest, action = decision
    with tracking.registry_lock(name, "aliases"):
        for _ in range(MAX_REDECISIONS):
            holder = versions.current_champion(name)
            if _number(holder) == (contest.champion.number if contest.champion else None) or contest.lost:
                break
            contest, action = decide_again()
        number = candidate.number
        if action.register and registration is not None:
            number = str(_register(name, candidate, registration, action).version)
        champion, reason = action.champion, action.reason
        if champion and number is not None:
            problem = "" if registration is not None and registration.measured else load_problem(f"models:/{name}/{number}")
            if problem:
                champion, reason = False, f"v{number} does not load: {problem}"
            else:
                versions.point(name, CHAMPION, number)
            refused = {number} if problem else set()
            if problem and contest.lost:  # the champion does not load either: the best version that does
                refused.add(str(versions.current_champion(name).version))
            converge(name, candidate.fingerprint, refused)
        fast = update_fast(name, budget_ms)
    holder = versions.current_champion(name)
    holds = holder is not None and _number(holder) == number
    if holds != champion:  # another job's promotion came after
        now = f"v{_number(holder)} is champion" if holder is not None else "no version is champion"
        reason = f"{reason}; {now} after concurrent promotions"
    return Outcome(number, holds, reason, fast)


def _register(name: str, candidate: Candidate, registration: Registration, action: Action):
    tags = dict(registration.tags)
    if action.gain is not None:
        tags.update({versions.GAIN_TAG: f"{action.gain.delta:+.4f}", versions.GAIN_CI_TAG: action.gain.interval()})
    return versions.register(registration.model_uri, name, registration.metrics, candidate.fingerprint,
                             registration.summary, tags=tags, measured=registration.measured)


def _number(found) -> str | None:
    return None if found is None else str(found.version)


def converge(name: str, fingerprint: str, refused: set[str] = frozenset()) -> None:
    """`champion` on the best usable version of `fingerprint` that loads when it holds a worse one of
    that split (a concurrent job's write came last) or one `refused` (found not to load)."""
    holder = versions.current_champion(name)
    held = None if holder is None else str(holder.version)
    if holder is not None and holder.tags.get("data_fingerprint") != fingerprint and held not in refused:
        return
    scored = [v for v in versions.versions_of(name) if v.number not in refused]
    while (best := best_of(scored, fingerprint)) is not None and best.number != held:
        if not load_problem(f"models:/{name}/{best.number}"):
            versions.point(name, CHAMPION, best.number)
            return
        scored = [v for v in scored if v.number != best.number]


def update_fast(name: str, budget_ms: float) -> str:
    """Point `fast` at the version the rule chooses (`rule.choose_fast`) that loads, or remove it: it
    never stays on a model of other data. Returns what it did."""
    holder = versions.current_champion(name)
    if holder is None:
        return f"{name} has no {CHAMPION}: no {FAST} either"
    held, candidates, current = versions.as_version(holder), versions.versions_of(name), versions.alias(name, FAST)
    while (chosen := choose_fast(held, candidates, budget_ms)) is not None:
        if not load_problem(f"models:/{name}/{chosen.number}"):
            if current is None or str(current.version) != chosen.number:
                versions.point(name, FAST, chosen.number)
            return f"{name}@{FAST} is v{chosen.number} ({chosen.row_cost_ms:.2f} ms a row)"
        candidates = [v for v in candidates if v.number != chosen.number]
    if current is not None:
        versions.remove_alias(name, FAST)
    data = f"{held.data.describe()}" if held.data else f"v{held.number}"
    return (f"no version of {name} on the champion's data ({data}) predicts within {budget_ms:g} ms a row"
            + (f": {FAST} (was v{current.version}) removed" if current else ""))
