"""The registry decides per dataset (`rakuten.registry`): a smoke run or a subset never takes
`champion` or `fast`; new data ends with a model fitted on it, the candidate's or the champion's
recipe trained there by a run of its own. Real runs on the bundled sample and the shared data."""

import pytest
from dataclasses import replace

import mlflow
from mlflow import MlflowClient

from rakuten import data_identity, registry
from rakuten.data_of import DataOf
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

WEAK = ("model=multinomialnb", "model.estimator.alpha=30", "model.max_features=300")


def aliases() -> dict[str, str]:
    return {alias: str(version) for alias, version in MlflowClient().get_registered_model("rakuten-text").aliases.items()}


def versions() -> list:
    return sorted(MlflowClient().search_model_versions("name='rakuten-text'"), key=lambda v: int(v.version))


def newest_run():
    return mlflow.search_runs(search_all_experiments=True, order_by=["attributes.start_time DESC"],
                              output_format="list")[0]


def test_a_smoke_run_never_takes_champion_or_fast(store):
    run(config("refit=all"))  # every row of the sample
    assert aliases() == {"champion": "1", "fast": "1"}
    smoke = run(config("data.max_rows=300", "model=linearsvc", "refit=all"))
    assert smoke > 0
    assert aliases() == {"champion": "1", "fast": "1"} and len(versions()) == 1
    said = newest_run().data.tags["promotion"]
    assert said.startswith("not registered: it learned from 300 of 2,000 rows of rakuten-sample"), said
    assert "never takes champion or fast" in said
    # registered anyway (register=always), it still takes neither alias
    run(config(SPLIT_ONLY, "data.max_rows=300", "model=linearsvc", "register=always"))
    assert aliases() == {"champion": "1", "fast": "1"} and len(versions()) == 2
    assert "fewer rows of the data of champion v1" in newest_run().data.tags["promotion"]


def test_new_data_where_the_candidate_wins_serves_the_candidate(store, shared_dir):
    run(config(*WEAK, "refit=all"))  # a weak champion on the sample
    assert aliases()["champion"] == "1"
    run(config(f"data.dir={shared_dir}", "refit=all"))
    assert aliases() == {"champion": "2", "fast": "2"}
    winner = versions()[1]
    assert winner.tags["dataset"] == "rakuten-full" and int(winner.tags["data_rows"]) > 2000
    said = newest_run().data.tags["promotion"]
    assert said.startswith("champion: on new data") and "its recipe retrained and scored on this split" in said


def test_new_data_where_the_champions_recipe_wins_serves_that_recipe_fitted_there(store, shared_dir):
    run(config("model=linearsvc", "refit=all"))  # a strong champion on the sample
    sample_champion = versions()[0]
    assert aliases() == {"champion": "1", "fast": "1"}
    run(config(f"data.dir={shared_dir}", *WEAK, "refit=all"))  # a weak candidate on the full data
    candidate, successor = mlflow.search_runs(search_all_experiments=True, order_by=["attributes.start_time ASC"],
                                              output_format="list")[-2:]
    assert candidate.data.tags["promotion"].startswith("not registered: on new data"), candidate.data.tags
    # the champion's recipe, trained on the full data by a run of its own, serves
    assert successor.data.tags["retrained_from"] == "rakuten-text v1"
    assert successor.data.tags["model"] == "linearsvc" and successor.data.tags["dataset"] == "rakuten-full"
    assert successor.data.tags["promotion"].startswith("champion: the champion's recipe, trained on this data")
    assert aliases() == {"champion": "2", "fast": "2"}, "fast must follow the champion's data"
    retrained = versions()[1]
    assert retrained.run_id == successor.info.run_id
    assert int(retrained.tags["data_rows"]) == int(retrained.tags["data_population_rows"]) > 2000
    sample = replace(DataOf.of_tags(sample_champion.tags),
                     ids=tuple(data_identity.population_ids(sample_champion.run_id)))
    assert data_identity.relation(sample, retrained) == data_identity.FEWER
    assert data_identity.relation(sample, sample_champion) == data_identity.SAME
    # the sample after the full data: fewer rows of the champion's data, it never takes it back
    run(config("model=linearsvc", "refit=all", "register=always"))
    assert aliases() == {"champion": "2", "fast": "2"}
    assert "fewer rows of the data of champion v2" in newest_run().data.tags["promotion"]


def test_fast_never_stays_on_other_data(store, shared_dir):
    run(config("refit=all", "fast_budget_ms=1000"))  # sample: champion and fast
    assert aliases() == {"champion": "1", "fast": "1"}
    # a champion of new data that no version of its data can serve within the budget: fast is removed
    run(config(f"data.dir={shared_dir}", "model=linearsvc", "refit=all", "fast_budget_ms=0.000001"))
    assert aliases() == {"champion": "2"}
    assert "fast (was v1) removed" in newest_run().data.tags["fast_alias"]
    # a slow champion (as an e5 model measures, 40-70 ms a row): a quick model of its data, worse
    # than it, registers because it takes fast
    MlflowClient().set_model_version_tag("rakuten-text", "2", registry.ROW_COST_TAG, "50.0")
    run(config(f"data.dir={shared_dir}", *WEAK, "refit=all"))
    assert aliases() == {"champion": "2", "fast": "3"}
    assert versions()[2].tags["dataset"] == "rakuten-full"
    # another quick model of that data, worse than the fast one: not registered
    run(config(f"data.dir={shared_dir}", *WEAK, "model.estimator.alpha=60", "refit=all"))
    assert len(versions()) == 3 and newest_run().data.tags["promotion"].startswith("not registered")


def test_a_champion_whose_ids_are_lost_is_never_demoted(store, shared_dir):
    """Finding 7 of the fourth round: with the champion's `data/population.npy` deleted, a sample model
    replaced a full-data champion ("the champion's recipe, trained on this data") and moved `fast`."""
    from pathlib import Path
    from urllib.parse import urlparse

    run(config(f"data.dir={shared_dir}", "model=linearsvc", "refit=all"))
    assert aliases() == {"champion": "1", "fast": "1"}
    held = versions()[0]
    lost = Path(urlparse(mlflow.get_run(held.run_id).info.artifact_uri).path) / "data" / "population.npy"
    lost.unlink()
    run(config("model=linearsvc", "refit=all"))  # the bundled sample: fewer rows, ids not comparable
    run(config("model=linearsvc", "refit=all", "register=always"))
    assert aliases() == {"champion": "1", "fast": "1"} and len(versions()) == 2
    said = newest_run().data.tags["promotion"]
    assert "champion v1's run has lost data/population.npy" in said and "champion and fast stay" in said, said
    assert "To repair: train again on the champion's data" in said
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 3  # no retraining run
