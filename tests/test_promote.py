"""The promotion rule, on real runs: a better model takes `champion`, a worse one never does."""

import pytest
import mlflow
import numpy as np
from mlflow import MlflowClient

from rakuten import promote, registry
from rakuten.data_of import DataOf
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

QUICK = ("data.max_rows=600", "register=always")  # every run's model registered: losers too
WEAK = ("model=multinomialnb", "model.estimator.alpha=30", "model.max_features=300")


def champion_version() -> str:
    return str(MlflowClient().get_model_version_by_alias("rakuten-text", registry.CHAMPION).version)


def test_first_model_becomes_champion_better_replaces_worse_does_not(store):
    weak = run(config(SPLIT_ONLY, *QUICK, *WEAK))
    assert champion_version() == "1"
    strong = run(config(SPLIT_ONLY, *QUICK))
    assert strong > weak
    assert champion_version() == "2"
    again_weak = run(config(SPLIT_ONLY, *QUICK, *WEAK))
    assert again_weak == weak
    assert champion_version() == "2", "a worse model took champion"
    versions = MlflowClient().search_model_versions("name='rakuten-text'")
    assert len(versions) == 3
    described = MlflowClient().get_model_version("rakuten-text", "3")
    assert "test_f1_weighted=" in described.description and "data_fingerprint=" in described.description
    loser = mlflow.search_runs(filter_string="tags.registered_version = '3'")
    assert loser["tags.promotion"].str.startswith("not champion: ").tolist() == [True]


def test_a_gain_on_the_same_data_carries_its_interval(store, capsys):
    """Every comparison on the same test rows says its paired-bootstrap interval: the job's last line,
    the new version's tags `f1_gain` and `f1_gain_ci95`, the leaderboard."""
    from rakuten import leaderboard

    weak = run(config(SPLIT_ONLY, *QUICK, *WEAK))
    capsys.readouterr()
    strong = run(config(SPLIT_ONLY, *QUICK))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    v2 = MlflowClient().get_model_version("rakuten-text", "2")
    gain, interval = float(v2.tags["f1_gain"]), v2.tags["f1_gain_ci95"]
    assert gain == round(strong - weak, 4)
    low, high = (float(bound) for bound in interval.strip("[]").split(", "))
    assert low < gain < high and high - low < 0.2
    assert f"{strong:.4f} beats champion v1 ({weak:.4f}, its logged score): {gain:+.4f} {interval}, " in last
    assert last.split(f"{interval}, ")[1].startswith(("above noise", "within noise"))
    best = leaderboard.by_dataset(leaderboard.entries("rakuten"))["rakuten-sample"][0]
    assert best.gain == f"{gain:+.4f} {interval}" and "champion" in best.version


def test_champion_from_other_data_is_rescored_on_this_test_part(store):
    run(config(*QUICK, "seed=1", "refit=all"))
    first = MlflowClient().get_model_version("rakuten-text", "1")
    # a weak model on another split: the champion is scored again on that split and is kept
    run(config(SPLIT_ONLY, *QUICK, "seed=2", *WEAK))
    assert champion_version() == "1"
    assert MlflowClient().get_model_version_by_alias("rakuten-text", "champion").run_id == first.run_id
    # v1 was refitted on every row, this test part included: its recipe was retrained on this
    # split's training part before being scored, not scored on rows it had learnt
    loser = mlflow.search_runs(filter_string="tags.registered_version = '2'", output_format="list")[0]
    assert "its recipe retrained and scored on this split" in loser.data.tags["promotion"]


def test_by_default_only_a_model_that_takes_champion_is_registered(store):
    """`register=true` (the default): a run that does not take champion leaves no version (clutter)."""
    run(config(SPLIT_ONLY, "data.max_rows=600"))
    run(config(SPLIT_ONLY, "data.max_rows=600", *WEAK))
    run(config(SPLIT_ONLY, "data.max_rows=600"))  # the same score again: it does not beat the champion
    assert [str(v.version) for v in MlflowClient().search_model_versions("name='rakuten-text'")] == ["1"]
    losers = mlflow.search_runs(filter_string="tags.promotion LIKE 'not registered:%'", output_format="list")
    assert len(losers) == 2 and all("does not beat champion v1" in r.data.tags["promotion"] for r in losers)


def test_no_registration_when_register_is_false(store):
    run(config(SPLIT_ONLY, *QUICK, "register=false"))
    assert MlflowClient().search_registered_models() == []


def test_unscorable_champion_is_kept(store):
    run(config(SPLIT_ONLY, *QUICK))
    run(config(SPLIT_ONLY, *QUICK))  # v2: the same score does not beat v1
    assert champion_version() == "1"

    def broken(uri, refitted):
        raise RuntimeError("cannot load")

    v2 = MlflowClient().get_model_version("rakuten-text", "2")
    candidate = registry.Candidate(1.0, "another-fingerprint", DataOf.of_tags(v2.tags), number="2")
    rows = registry.TestRows(np.array([10]), np.array([1]), None, broken)
    outcome, action, _ = registry.propose("rakuten-text", candidate, rows, registry.Policy(5.0), None)
    assert not action.champion and not outcome.champion and "could not be scored" in action.reason
    assert champion_version() == "1"


def test_command_ranks_runs_and_points_champion_and_challenger(store, capsys):
    scores = {name: run(config(SPLIT_ONLY, *QUICK, f"model={name}", "register=false"))
              for name in ("multinomialnb", "linearsvc", "complementnb")}
    assert MlflowClient().search_registered_models() == []
    capsys.readouterr()  # the jobs' own console lines
    assert promote.main(["--dry-run"]) == 0
    printed = capsys.readouterr().out
    order = sorted(scores, key=scores.get, reverse=True)
    assert [line.split()[2] for line in printed.splitlines()[2:5]] == order
    assert MlflowClient().search_registered_models() == [], "--dry-run changed the registry"

    assert promote.main([]) == 0
    client = MlflowClient()
    holder = client.get_model_version_by_alias("rakuten-text", registry.CHAMPION)
    challenger = client.get_model_version_by_alias("rakuten-text", registry.CHALLENGER)
    assert client.get_run(holder.run_id).data.tags["model"] == order[0]
    assert client.get_run(challenger.run_id).data.tags["model"] == order[1]
    assert "data_fingerprint=" in holder.description
    assert promote.main([]) == 0  # idempotent: no new versions
    assert len(client.search_model_versions("name='rakuten-text'")) == 2


def test_command_never_moves_champion_to_a_worse_model(store, capsys):
    strong = run(config(SPLIT_ONLY, "data.max_rows=600", "seed=1"))             # champion, on one split
    run(config(SPLIT_ONLY, "data.max_rows=600", "seed=2", *WEAK, "register=false"))  # newest runs: another split
    assert promote.main([]) == 0
    assert champion_version() == "1"
    assert "not promoted" in capsys.readouterr().out.split("runs on data")[-1]
    assert strong > 0


def test_command_without_runs_fails_clearly(store, capsys):
    assert promote.main(["--experiment", "nothing-here"]) == 2
    assert "no finished text run" in capsys.readouterr().err


def test_command_sees_registered_versions_of_any_experiment(store, capsys):
    """`mlflow run .` logs into `Default`: its champion is still ranked by `rakuten.promote`."""
    run(config(SPLIT_ONLY, *QUICK, "mlflow.experiment=Default"))
    capsys.readouterr()  # the job's own console lines
    assert promote.main(["--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "1 text runs" in printed and "<- champion" in printed
