"""The run lifecycle: a job's run opened and always ended (FINISHED, FAILED, KILLED), the process
that owns it, the repair of runs whose process is gone, and `mlflow run` launches."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time

import mlflow
import psutil
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rakuten import PROJECT_ROOT
from rakuten.tracking.console import muted, one_line
from rakuten.tracking.http import is_outage, quick_http

log = logging.getLogger("rakuten.tracking")


# Which process owns a run: how `end_orphaned_runs` tells a live job from one that died.
HOST_TAG, PID_TAG, PID_STARTED_TAG = "rakuten.host", "rakuten.pid", "rakuten.pid_started"
ENDED_BY_TAG = "rakuten.ended_by"
_open_runs: list[str] = []  # runs this process started and has not ended, outermost first


def process_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PID_STARTED_TAG: f"{psutil.Process().create_time():.3f}"}


_launcher_run: str | None = None  # a `mlflow run` launch left in Default: the job logs elsewhere


def launch_experiment(experiment: str) -> str | None:
    """Under `mlflow run`, the experiment of the run it made for this job, which the job logs into;
    None otherwise. A launch in MLflow's `Default` experiment (`mlflow run .` with no
    `--experiment-name`) is not where users look: the job then logs into `experiment` and the
    launch's run points at the job's run (`_point_launch_at`)."""
    global _launcher_run
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return None
    launched_in = MlflowClient().get_run(run_id).info.experiment_id
    if launched_in == "0" and experiment != "Default":
        _launcher_run = run_id
        del os.environ["MLFLOW_RUN_ID"]  # else MLflow's start_run resumes it, whatever the experiment
        return None
    return launched_in


def _point_launch_at(job_run) -> None:
    """The `mlflow run` launch's run says where its job's run is (tag and note)."""
    experiment = experiment_name(job_run.info.experiment_id)
    MlflowClient().set_tag(_launcher_run, "rakuten.job_run", f"{experiment}/{job_run.info.run_id}")
    MlflowClient().set_tag(_launcher_run, "mlflow.note.content",
                           f"This launch's job logged its run in experiment `{experiment}`: {job_run.info.run_id}")
    for key, value in process_tags().items():  # alive while the job is: `end_orphaned_runs` checks them
        MlflowClient().set_tag(_launcher_run, key, value)


def mark_launch() -> None:
    """Under `mlflow run`, the launch's run says which process serves it (a `serve`, `predict` or
    `explain` launch, alive for hours): `end_orphaned_runs` then leaves it alone while it lives.
    The command also follows its launcher (`follow_launcher`)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        for key, value in process_tags().items():
            MlflowClient().set_tag(run_id, key, value)
        follow_launcher(run_id)


def _launcher() -> psutil.Process | None:
    """The `mlflow run` process this one descends from, if any."""
    for parent in psutil.Process().parents():
        try:
            if _is_mlflow_run(parent):
                return parent
        except psutil.Error:
            continue
    return None


def follow_launcher(run_id: str, poll_seconds: float = 0.5) -> None:
    """When the `mlflow run` that launched this command dies (a SIGTERM or SIGKILL to it is not passed
    on: the command would live on under PID 1, serving, its launch RUNNING), end the launch's run
    KILLED and stop this command as a SIGTERM would."""
    import signal
    import threading

    launcher = _launcher()
    if launcher is None:
        return

    def watch() -> None:
        while launcher.is_running():
            time.sleep(poll_seconds)
        try:
            with quick_http():
                MlflowClient().set_tag(run_id, ENDED_BY_TAG, "killed: its `mlflow run` launcher is gone")
                MlflowClient().set_terminated(run_id, "KILLED")
        except Exception as error:  # noqa: BLE001 - the command stops whatever the store says
            log.warning("could not end the launch's run %s KILLED: %s", run_id, one_line(error))
        print(f"the `mlflow run` that launched this command (pid {launcher.pid}) is gone: stopping; its run "
              "is ended KILLED", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="follow-launcher", daemon=True).start()


def _is_mlflow_run(process: psutil.Process) -> bool:
    words = [os.path.basename(word) for word in process.cmdline()]
    return any(word == "mlflow" and after == "run" for word, after in zip(words, words[1:]))


def _launch_process_alive(run_id: str, started_ms: int) -> bool:
    """Whether a process on this machine still works for `mlflow run`'s run `run_id`: its command
    (MLFLOW_RUN_ID in its environment), or an `mlflow run` begun before the run (its launcher,
    building the command's environment)."""
    for process in psutil.process_iter(["create_time"]):
        try:
            if process.environ().get("MLFLOW_RUN_ID") == run_id or (
                    process.info["create_time"] * 1000 <= started_ms + 1000 and _is_mlflow_run(process)):
                return True
        except psutil.Error:
            continue
    return False


@contextlib.contextmanager
def run(run_name: str, tags: dict[str, str], nested_in_env_run: bool = False):
    """One MLflow run, ended FINISHED, FAILED, or KILLED (Ctrl-C), never left RUNNING.

    Under `mlflow run`, MLFLOW_RUN_ID names the run it created: a single job logs into it, and
    with `nested_in_env_run` (a Hydra multirun) each job is a child of it; unless that run was left
    in `Default` (see `launch_experiment`).
    """
    env_run_id = os.environ.get("MLFLOW_RUN_ID")
    owned = {**tags, **process_tags()}
    opened = []
    try:
        if env_run_id and nested_in_env_run:
            opened.append(mlflow.start_run(run_id=env_run_id))
            opened.append(mlflow.start_run(run_name=run_name, nested=True, tags=owned))
        elif env_run_id:
            opened.append(mlflow.start_run(run_id=env_run_id))
            mlflow.set_tags({"mlflow.runName": run_name, **owned})
        else:
            opened.append(mlflow.start_run(run_name=run_name, tags=owned))
            if _launcher_run is not None:
                _point_launch_at(opened[-1])
        _open_runs.extend(r.info.run_id for r in opened)
        yield opened[-1]
    except BaseException as error:
        _end(opened, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED", quick=True)
        raise
    else:
        _end(opened, "FINISHED")


def _end(opened: list, status: str, quick: bool = False) -> None:
    for active in reversed(opened):
        run_id = active.info.run_id
        try:
            with quick_http() if quick else contextlib.nullcontext(), muted():
                mlflow.end_run(status)
        except Exception as error:
            if not quick:
                raise
            log.warning("run %s is left RUNNING: the store did not answer (%s)", run_id,
                        "no connection" if is_outage(error) else one_line(error, 200))
        finally:
            if run_id in _open_runs:
                _open_runs.remove(run_id)


def end_open_runs(status: str) -> list[str]:
    """End every run this process has open (from any thread): what a kill does before exiting."""
    ended = []
    with quick_http():
        for run_id in reversed(list(_open_runs)):
            try:
                MlflowClient().set_tag(run_id, ENDED_BY_TAG, status.lower())
                MlflowClient().set_terminated(run_id, status)
                ended.append(run_id)
            except Exception as error:  # noqa: BLE001 - a kill goes on whatever the store says
                log.warning("could not end run %s %s: %s", run_id, status, one_line(error))
    _open_runs.clear()
    return ended


STALE_LAUNCH_MINUTES = 10.0  # a run `mlflow run` made whose job has not begun after this long is orphaned


def end_orphaned_runs(experiment_ids: list[str] | None = None,
                      stale_launch_minutes: float | None = STALE_LAUNCH_MINUTES) -> list[str]:
    """End FAILED the RUNNING runs (of these experiments; None: all) whose process, on this
    machine, is gone: killed with -9, crashed, or stopped by a store outage that outlasted the
    retries. Also those that `mlflow run` created but whose job never began (no process tags; the
    environment could not be made, say) after `stale_launch_minutes` (None: left alone). Runs of
    other machines are left alone (their processes cannot be seen from here). Returns the ids ended."""
    found = mlflow.search_runs(
        experiment_ids=experiment_ids, search_all_experiments=experiment_ids is None,
        filter_string="attributes.status = 'RUNNING'", output_format="list",
    )
    client, ended = MlflowClient(), []
    for found_run in found:
        tags = found_run.data.tags
        if found_run.info.run_id in (os.environ.get("MLFLOW_RUN_ID"), _launcher_run):  # this job's `mlflow run` run
            continue
        why = _orphaned(tags, found_run.info.start_time, stale_launch_minutes, found_run.info.run_id)
        if not why:
            continue
        try:
            client.set_tag(found_run.info.run_id, ENDED_BY_TAG, f"repair: {why}")
            client.set_terminated(found_run.info.run_id, "FAILED")
            ended.append(found_run.info.run_id)
        except MlflowException as error:  # on a team server: another member's run (403), theirs to repair
            if error.error_code != "PERMISSION_DENIED":
                raise
            log.info("run %s is orphaned (%s) but not ours to end: %s", found_run.info.run_id, why, one_line(error))
    return ended


def alive_or_finished(run_id: str | None) -> bool:
    """Whether a run FINISHED, or is RUNNING with its process alive (a job still at work, whose
    version its own promotion will weigh): not FAILED, KILLED, deleted, nor orphaned."""
    try:
        found = MlflowClient().get_run(run_id) if run_id else None
    except Exception:  # noqa: BLE001 - a deleted run, a run of another store
        return False
    if found is None:
        return False
    if found.info.status == "RUNNING":
        return not _orphaned(found.data.tags, found.info.start_time, STALE_LAUNCH_MINUTES, found.info.run_id)
    return found.info.status == "FINISHED"


def _orphaned(tags: dict, start_time_ms: int, stale_launch_minutes: float | None, run_id: str = "") -> str:
    """Why a RUNNING run is orphaned, '' when it is not (or cannot be told from here)."""
    if PID_TAG in tags:
        if tags.get(HOST_TAG) != socket.gethostname() or _process_alive(tags.get(PID_TAG), tags.get(PID_STARTED_TAG)):
            return ""
        return f"process {tags.get(PID_TAG)} on {tags.get(HOST_TAG)} is gone"
    if stale_launch_minutes is None or tags.get("mlflow.source.type") != "PROJECT":
        return ""
    age_minutes = (time.time() * 1000 - start_time_ms) / 60_000
    if age_minutes < stale_launch_minutes or _launch_process_alive(run_id, start_time_ms):
        return ""  # a launch whose process is alive is never ended, whatever its age
    return f"`mlflow run` started it {age_minutes:.0f} min ago and its job never began"


def _process_alive(pid: str | None, started: str | None) -> bool:
    try:
        process = psutil.Process(int(pid))
        return started is None or abs(process.create_time() - float(started)) < 1.0
    except (TypeError, ValueError, psutil.Error):
        return False


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_info(run_id: str):
    return MlflowClient().get_run(run_id).info


def experiment_name(experiment_id: str) -> str:
    return MlflowClient().get_experiment(experiment_id).name
