"""Finding 9 of the fourth round: a worker killed before its trial's first heartbeat was recorded left the
trial RUNNING for good (no heartbeat row: Optuna never fails it; `study_failed_trials=0`). The trial is
made here as such a worker leaves it (created RUNNING, then nothing), on SQLite and on PostgreSQL."""

import time

import optuna
import pytest
from optuna.trial import TrialState

from rakuten.trial_heartbeat import HeartbeatFromStart


def left_by_a_killed_worker(url: str, storage_class) -> optuna.Study:
    storage = storage_class(url=url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="killed-at-once", direction="maximize")
    storage.create_new_trial(study._study_id)  # RUNNING, and its worker dies before any heartbeat
    time.sleep(1.5)  # past the grace period
    optuna.storages.fail_stale_trials(study)
    return study


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def database(request, tmp_path):
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    postgres = request.getfixturevalue("postgres")
    return postgres.create_database


def test_a_trial_killed_before_its_first_heartbeat_ends_fail(database):
    assert [t.state for t in left_by_a_killed_worker(database("plain"), optuna.storages.RDBStorage).trials] == \
        [TrialState.RUNNING]  # Optuna's own storage: the fault
    assert [t.state for t in left_by_a_killed_worker(database("ours"), HeartbeatFromStart).trials] == [TrialState.FAIL]


def test_a_live_trial_is_never_failed(tmp_path):
    storage = HeartbeatFromStart(url=f"sqlite:///{tmp_path / 'live.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, direction="maximize")

    def objective(trial):
        time.sleep(2.5)  # longer than the grace period, beating
        optuna.storages.fail_stale_trials(study)
        return 1.0

    study.optimize(objective, n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
