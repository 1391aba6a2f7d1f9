"""Optuna's RDB storage, whose stale trials include those whose worker died before its first heartbeat.

Optuna marks a RUNNING trial FAIL once its heartbeat is older than the grace period; a trial whose
worker was killed between the trial's creation and its heartbeat thread's first beat has no heartbeat
at all, and Optuna never fails it (it stays RUNNING forever, and the study's counts lie). Here a
RUNNING trial without any heartbeat that started longer ago than the grace period is stale too (a live
worker beats within milliseconds of starting a trial).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
from optuna.storages._rdb import models
from optuna.trial import TrialState


class HeartbeatFromStart(optuna.storages.RDBStorage):
    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace = timedelta(seconds=self.grace_period or 2 * self.heartbeat_interval)
        now = datetime.now()  # what Optuna stamps `datetime_start` with, on the worker
        with self.scoped_session() as session:
            running = (session.query(models.TrialModel)
                       .filter(models.TrialModel.state == TrialState.RUNNING, models.TrialModel.study_id == study_id)
                       .all())
            stale += [trial.trial_id for trial in running if not trial.heartbeats and trial.datetime_start
                      and now - trial.datetime_start > grace]
        return stale
