"""The Model Registry: which model serves each dataset (`champion`, `fast`), decided in one place.

- `rule`: the rule itself, pure (`decide(candidate, contest, policy) -> Action`; its docstring has the
  table), with `choose_fast` and `best_of`; tested without MLflow;
- `gain`: how sure a gain is (the paired bootstrap of the weighted-F1 difference on the same rows);
- `contest`: the champion held against a candidate, measured (rescored, its gain's interval);
- `apply`: an action carried out in MLflow under the registry's lock;
- `versions`: the registered versions and aliases as MLflow holds them.

A training job ends with a candidate and hands it to `propose`; the command carries out a
retraining the action asks for (`Action.retrain`).
"""

from __future__ import annotations


from rakuten.registry.apply import Outcome, Registration, carry_out, converge, update_fast
from rakuten.registry.contest import TestRows, held_against, memoized
from rakuten.registry.gain import Gain, paired_bootstrap
from rakuten.registry.rule import (CHAMPION, FAST, Action, Candidate, Contest, Policy, Version, best_of, choose_fast,
                                   decide, successor)
from rakuten.registry.versions import (CHALLENGER, GAIN_CI_TAG, GAIN_TAG, LATENCY_TAG, METRIC, MODALITIES,
                                       ROW_COST_TAG, current_champion, register, registry_name)

__all__ = ["Action", "Candidate", "CHALLENGER", "CHAMPION", "Contest", "FAST", "GAIN_CI_TAG", "GAIN_TAG", "Gain",
           "LATENCY_TAG", "METRIC", "MODALITIES", "Outcome", "Policy", "ROW_COST_TAG", "Registration", "TestRows",
           "Version", "best_of", "carry_out", "choose_fast", "converge", "current_champion", "decide", "held_against",
           "memoized", "paired_bootstrap", "propose", "register", "registry_name", "successor", "update_fast"]


def propose(name: str, candidate: Candidate, rows: TestRows, policy: Policy, registration: Registration | None,
            verify_champion: bool = False) -> tuple[Outcome, Action, Contest]:
    """A candidate through the whole rule: held against the champion, decided, carried out.
    `registration`: how to register a new candidate (None for a registered one); a new candidate
    comes measured (`Candidate.problem`, `row_cost_ms`: `rakuten.model_check.check` of its model)."""
    last: dict = {}

    def decided() -> tuple[Contest, Action]:
        contest = held_against(name, candidate, rows, policy.fast_budget_ms, verify_champion)
        last.update(contest=contest, action=decide(candidate, contest, policy))
        return contest, last["action"]

    contest, action = decided()
    if not (action.register or action.champion):
        return Outcome(candidate.number, False, action.reason, ""), action, contest
    outcome = carry_out(name, candidate, registration, policy.fast_budget_ms, (contest, action), decided)
    return outcome, last["action"], last["contest"]
