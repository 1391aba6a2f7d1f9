"""The promotion rule, on real runs: a better model takes `champion`, a worse one never does."""

import mlflow
from mlflow import MlflowClient

from rakuten import promote
from rakuten.train import run
from tests.conftest import config

QUICK = ("data.max_rows=600",)
WEAK = ("model=multinomialnb", "model.estimator.alpha=30", "model.max_features=300")


def champion_version() -> str:
    return str(MlflowClient().get_model_version_by_alias("rakuten-text", promote.CHAMPION).version)


def test_first_model_becomes_champion_better_replaces_worse_does_not(store):
    weak = run(config(*QUICK, *WEAK))
    assert champion_version() == "1"
    strong = run(config(*QUICK))
    assert strong > weak
    assert champion_version() == "2"
    again_weak = run(config(*QUICK, *WEAK))
    assert again_weak == weak
    assert champion_version() == "2", "a worse model took champion"
    versions = MlflowClient().search_model_versions("name='rakuten-text'")
    assert len(versions) == 3
    described = MlflowClient().get_model_version("rakuten-text", "3")
    assert "test_f1_weighted=" in described.description and "data_fingerprint=" in described.description
    loser = mlflow.search_runs(filter_string="tags.registered_version = '3'")
    assert loser["tags.champion"].tolist() == ["false"]


def test_champion_from_other_data_is_rescored_on_this_test_part(store):
    run(config("data.max_rows=600", "seed=1"))
    first = MlflowClient().get_model_version("rakuten-text", "1")
    # a weak model on another split: the champion is scored again on that split and is kept
    run(config("data.max_rows=600", "seed=2", *WEAK))
    assert champion_version() == "1"
    assert MlflowClient().get_model_version_by_alias("rakuten-text", "champion").run_id == first.run_id


def test_no_registration_when_register_is_false(store):
    run(config(*QUICK, "register=false"))
    assert MlflowClient().search_registered_models() == []


def test_unscorable_champion_is_kept(store):
    run(config(*QUICK))

    def broken(uri):
        raise RuntimeError("cannot load")

    decision = promote.promote_if_better("rakuten-text", "1", 1.0, "another-fingerprint", broken)
    assert not decision.promoted and "could not be scored" in decision.reason
