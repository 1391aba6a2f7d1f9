"""Faults in the registry: a version whose model files are gone or truncated, a version of a run
that was killed. Expected: neither becomes champion; a champion that no longer loads is reported
in one line, exit non-zero, and the best version that loads takes its place; what `promote`
prints, what `--dry-run` said and what the registry holds agree. Before: a version without files
and a killed run's version both became champion, and `promote` said otherwise."""

import pytest
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient

from rakuten import model_check, promote, registry
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

WORSE, BETTER = ("model=decisiontree",), ("model=linearsvc",)


def model_files(name: str, version: str) -> Path:
    return Path(urlparse(MlflowClient().get_model_version_download_uri(name, version)).path)


def latest_run():
    return mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]


def worse_registered_then_better_logged():
    """v1: the worse model, registered (champion); then the better one, logged but not registered."""
    run(config(SPLIT_ONLY, "data.max_rows=300", *WORSE))
    run(config(SPLIT_ONLY, "data.max_rows=300", "register=false", *BETTER))
    better = latest_run()
    logged = mlflow.search_logged_models(experiment_ids=[better.info.experiment_id], output_format="list",
                                         filter_string=f"source_run_id = '{better.info.run_id}'")[0]
    return better, logged


def champion_version() -> str:
    return str(MlflowClient().get_model_version_by_alias("rakuten-text", "champion").version)


def test_a_run_whose_model_files_are_gone_is_not_made_champion(store, capsys):
    _, logged = worse_registered_then_better_logged()
    for path in Path(urlparse(logged.artifact_location).path).rglob("*.joblib"):
        path.unlink()
    capsys.readouterr()
    assert promote.main(["--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert promote.main([]) == 0
    out = capsys.readouterr().out
    assert champion_version() == "1"
    assert "rakuten-text v2: not promoted (v2 does not load" in out
    assert "dry run: rakuten-text v2: not promoted (v2 does not load" in dry
    assert "rakuten-text@champion is v1" in out
    assert model_check.load_problem("models:/rakuten-text@champion") == ""


def test_a_champion_that_no_longer_loads_is_reported_and_replaced(store, capsys):
    run(config(SPLIT_ONLY, "data.max_rows=300", *WORSE))
    run(config(SPLIT_ONLY, "data.max_rows=300", *BETTER))
    assert champion_version() == "2"
    for path in model_files("rakuten-text", "2").rglob("*.joblib"):
        path.write_bytes(path.read_bytes()[:100])
    capsys.readouterr()
    assert promote.main([]) == 2
    captured = capsys.readouterr()
    assert "rakuten-text v2 is champion but does not load" in captured.err
    assert "rakuten-text@champion is v1" in captured.out
    assert champion_version() == "1" and model_check.load_problem("models:/rakuten-text@champion") == ""


def test_a_killed_runs_version_is_never_promoted_and_all_three_agree(store, capsys):
    killed, logged = worse_registered_then_better_logged()
    registry.register(logged.model_uri, "rakuten-text", killed.data.metrics, killed.data.tags["data_fingerprint"],
                      "registered, then its job was killed with -9")
    MlflowClient().set_terminated(killed.info.run_id, "FAILED")  # what runs --repair does after kill -9
    capsys.readouterr()
    assert promote.main(["--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert promote.main([]) == 0
    out = capsys.readouterr().out
    assert "dry run: rakuten-text v1: champion (v1 is already champion)" in dry
    assert "rakuten-text v1: champion (v1 is already champion)" in out and "rakuten-text@champion is v1" in out
    assert champion_version() == "1"
