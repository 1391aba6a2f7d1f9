"""The registry's rule without MLflow: every row of its table, ties, missing tags, a lost population
artifact, `fast` within and over budget, the significance policy, `register=always`."""

from types import SimpleNamespace

import numpy as np
import pytest

from rakuten.data_of import DataOf
from rakuten.data_identity import FEWER, OTHER, SAME, UNKNOWN, relation
from rakuten.registry.gain import Gain
from rakuten.registry.rule import (Candidate, Contest, Policy, Version, best_of, choose_fast, decide, fast_rivals,
                                   successor)

FULL = DataOf("rakuten-full", "pop-full", 4972, 4972, tuple(range(4972)))
SAMPLE = DataOf("rakuten-sample", "pop-sample", 2000, 2000, tuple(range(0, 4000, 2)))
SMOKE = DataOf("rakuten-full", "pop-full", 4972, 300, tuple(range(4972)))
POLICY = Policy(fast_budget_ms=5.0)


def version(number="1", score=0.78, data=FULL, cost=0.3, fingerprint="split-a", usable=True) -> Version:
    return Version(number, score, fingerprint, data, cost, usable)


def candidate(score=0.80, data=FULL, cost=0.2, number=None, problem="", fingerprint="split-a") -> Candidate:
    return Candidate(score, fingerprint, data, cost, problem, number)


def contest(relation_=SAME, champion_score=0.78, where="its logged score", gain=None, rivals=(), holder=None):
    return Contest(holder or version(), relation_, champion_score, where, gain, rivals)


# --- the table, row by row --------------------------------------------------------------------------
def test_no_champion_the_candidate_takes_it():
    action = decide(candidate(), Contest(None), POLICY)
    assert (action.register, action.champion, action.reason) == (True, True, "there was no champion")


def test_a_champion_that_does_not_load_loses_the_alias():
    action = decide(candidate(number="4"), Contest(None, lost="champion v3 does not load: gone"), POLICY)
    assert (action.register, action.champion) == (False, True) and action.reason == "champion v3 does not load: gone"


def test_fewer_rows_never_take_champion_or_fast():
    action = decide(candidate(score=0.99, data=SMOKE, cost=0.01), contest(FEWER), POLICY)
    assert (action.register, action.champion, action.fast) == (False, False, False)
    assert action.reason.startswith("it learned from 300 of 4,972 rows of rakuten-full, fewer rows of the data of "
                                    "champion v1") and "never takes champion or fast" in action.reason


def test_unknown_data_changes_nothing_and_says_how_to_repair():
    action = decide(candidate(score=0.99, data=SAMPLE), contest(UNKNOWN), POLICY)
    assert (action.register, action.champion, action.retrain) == (False, False, False)
    assert "has lost data/population.npy" in action.reason and "To repair" in action.reason


def test_same_data_a_better_score_takes_champion():
    action = decide(candidate(score=0.80), contest(SAME, 0.78), POLICY)
    assert (action.register, action.champion) == (True, True)
    assert action.reason == "0.8000 beats champion v1 (0.7800, its logged score)"


def test_same_data_a_tie_keeps_the_champion():
    action = decide(candidate(score=0.78, cost=9.0), contest(SAME, 0.78), POLICY)
    assert (action.register, action.champion) == (False, False) and "does not beat champion v1" in action.reason


def test_same_data_a_worse_quick_model_registers_to_take_fast_within_the_budget():
    slow_champion = version(cost=40.0)
    action = decide(candidate(score=0.75, cost=0.2), contest(SAME, 0.78, holder=slow_champion), POLICY)
    assert (action.register, action.champion, action.fast) == (True, False, True)


def test_same_data_a_worse_model_over_the_budget_is_not_registered():
    action = decide(candidate(score=0.75, cost=6.0), contest(SAME, 0.78, holder=version(cost=40.0)), POLICY)
    assert (action.register, action.champion, action.fast) == (False, False, False)


def test_fast_goes_to_the_best_within_the_budget_only():
    rival = version("2", score=0.77, cost=0.5)
    assert not decide(candidate(score=0.76, cost=0.2), contest(SAME, 0.78, rivals=(rival,)), POLICY).fast
    assert decide(candidate(score=0.775, cost=0.2), contest(SAME, 0.78, rivals=(rival,)), POLICY).fast


def test_other_data_a_winner_takes_champion_saying_so():
    action = decide(candidate(data=SAMPLE), contest(OTHER, 0.70, "its recipe retrained and scored on this split"), POLICY)
    assert (action.register, action.champion, action.retrain) == (True, True, False)
    assert action.reason.startswith("on new data (2,000 rows of rakuten-sample; champion v1 learned from 4,972 rows "
                                    "of rakuten-full): 0.8000 beats champion v1")


def test_other_data_a_loser_asks_for_the_champions_recipe_there():
    action = decide(candidate(score=0.70, data=SAMPLE), contest(OTHER, 0.75), POLICY)
    assert (action.register, action.champion, action.retrain) == (False, False, True)


def test_other_data_whose_champion_recipe_cannot_be_trained_there_serves_the_candidate():
    action = decide(candidate(score=0.10, data=SAMPLE), contest(OTHER, float("-inf"), "its recipe cannot be trained"),
                    POLICY)
    assert (action.register, action.champion, action.retrain) == (True, True, False)


def test_a_champion_that_cannot_be_scored_on_the_same_data_is_kept():
    action = decide(candidate(score=0.99), contest(SAME, None, "cannot load"), POLICY)
    assert (action.register, action.champion) == (False, False)
    assert action.reason == "champion v1 could not be scored on this data: cannot load"


def test_a_candidate_that_does_not_load_takes_nothing():
    action = decide(candidate(problem="no files", number="3"), Contest(None), POLICY)
    assert (action.register, action.champion) == (False, False) and action.reason == "v3 does not load: no files"


def test_the_champions_own_version_is_already_champion():
    action = decide(candidate(number="1"), contest(SAME), POLICY)
    assert (action.register, action.champion, action.reason) == (False, True, "v1 is already champion")


def test_the_successor_takes_champion():
    action = successor()
    assert (action.register, action.champion, action.relation) == (True, True, OTHER)


# --- the policy ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gain,moves", [(Gain(0.0024, -0.0041, 0.0090), False), (Gain(0.02, 0.004, 0.035), True)])
def test_require_significant_gain_moves_the_champion_only_above_noise(gain, moves):
    strict = Policy(5.0, require_significant_gain=True)
    action = decide(candidate(score=0.7830, cost=9.0), contest(SAME, 0.7806, gain=gain), strict)
    assert action.champion is moves and action.gain == gain
    assert gain.describe() in action.reason
    assert decide(candidate(score=0.7830, cost=9.0), contest(SAME, 0.7806, gain=gain), POLICY).champion  # default


def test_require_significant_gain_leaves_new_data_alone():
    strict = Policy(5.0, require_significant_gain=True)
    assert decide(candidate(data=SAMPLE), contest(OTHER, 0.70, gain=Gain(0.1, -0.2, 0.3)), strict).champion


def test_register_always_registers_what_takes_nothing():
    always = Policy(5.0, register_always=True)
    for case in (contest(FEWER), contest(UNKNOWN), contest(SAME, 0.9)):
        action = decide(candidate(score=0.5, cost=9.0), case, always)
        assert (action.register, action.champion) == (True, False)


# --- which version fast and converging promotions end on ----------------------------------------------
def test_fast_is_the_best_of_the_champions_data_within_the_budget():
    holder = version("1", 0.80, cost=40.0)
    versions = [holder, version("2", 0.78, cost=0.3), version("3", 0.79, cost=0.4), version("4", 0.79, cost=0.2),
                version("5", 0.795, cost=7.0), version("6", 0.85, data=SAMPLE, cost=0.1),
                version("7", 0.81, cost=0.1, usable=False)]
    assert choose_fast(holder, versions, 5.0).number == "3"  # tie of 3 and 4: the oldest
    assert [v.number for v in fast_rivals(holder, versions, 5.0)] == ["3", "4", "2"]
    assert choose_fast(holder, versions, 0.05) is None


def test_fast_among_versions_registered_before_the_data_was_recorded_goes_by_fingerprint():
    holder = version("1", 0.80, data=None, cost=40.0)
    old = [holder, version("2", 0.7, data=None, cost=0.1), version("3", 0.79, data=None, cost=0.1, fingerprint="b")]
    assert choose_fast(holder, old, 5.0).number == "2"


def test_promotions_converge_on_the_best_usable_version_of_their_split():
    versions = [version("1", 0.70), version("2", 0.80), version("3", 0.80), version("4", 0.90, usable=False),
                version("5", 0.95, fingerprint="split-b")]
    assert best_of(versions, "split-a").number == "2"
    assert best_of(versions, "split-c") is None


# --- the data's relation, a population artifact lost or tags missing ---------------------------------------
def held(data: DataOf | None):
    return SimpleNamespace(tags=data.tags() if data else {}, run_id="r")


def test_relations_of_the_data():
    full_ids = lambda run_id: np.arange(4972)  # noqa: E731
    assert relation(SMOKE, held(FULL), full_ids) == FEWER
    assert relation(FULL, held(FULL), full_ids) == SAME
    assert relation(FULL, held(SAMPLE), full_ids) == OTHER  # more rows: other data
    assert relation(SAMPLE, held(FULL), full_ids) == FEWER  # the sample's ids are among the full data's
    outside = DataOf("rakuten-new", "pop-new", 100, 100, tuple(range(10_000, 10_100)))
    assert relation(outside, held(FULL), full_ids) == OTHER
    assert relation(SAMPLE, held(FULL), lambda run_id: None) == UNKNOWN  # the artifact lost: never demotes
    assert relation(SAMPLE, held(None), full_ids) == SAME  # registered before the rule: by its split
