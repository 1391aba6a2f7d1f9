"""How a job ends when it is told to stop: SIGTERM (a scheduler, `kill`) or Ctrl-C (SIGINT).

The job runs in a worker thread while the main thread only waits, so a signal is acted on at
once, even in the middle of a fit that sits in C code for minutes:
- SIGTERM, or a second Ctrl-C: the job's open runs are ended KILLED, its temporary files are
  removed and the process exits 143 (130 for Ctrl-C), without waiting for the fit;
- a first Ctrl-C: KeyboardInterrupt is raised in the job at its next Python step (after the
  current fit), so it unwinds normally: runs KILLED, temporary files removed, exit 130.
A step that must not be cut in half (registering and promoting a model) holds `critical()`; a kill
waits for it to finish, up to `CRITICAL_WAIT_SECONDS`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("rakuten.lifecycle")

CRITICAL_WAIT_SECONDS = 60
JOB_FOLDER_PREFIX = "rakuten-job-"  # + the job's PID: what `remove_dead_job_folders` reads
_critical = threading.Lock()
_partial_files: set[Path] = set()


@contextlib.contextmanager
def critical():
    """A step that a kill lets finish (it waits for it)."""
    with _critical:
        yield


@contextlib.contextmanager
def removed_if_killed(path: str | Path):
    """A file being written: a kill removes it, so nothing half-written is left."""
    _partial_files.add(Path(path))
    try:
        yield Path(path)
    finally:
        _partial_files.discard(Path(path))


class _Kill(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def run_job(job: Callable[[], object], end_runs: Callable[[str], list[str]]):
    """`job()` in a worker thread, under the signal rules above; its result or its exception.

    `end_runs(status)` ends the job's open runs (called from the main thread on a kill). Outside
    the main thread (a launcher's worker), the job simply runs here.
    """
    if threading.current_thread() is not threading.main_thread():
        return job()
    outcome: dict = {}
    job_tmp = tempfile.mkdtemp(prefix=f"{JOB_FOLDER_PREFIX}{os.getpid()}-")
    saved_tmp, tempfile.tempdir = tempfile.tempdir, job_tmp  # everything temporary goes here

    def target():
        try:
            outcome["value"] = job()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name="rakuten-job", daemon=True)
    interrupts = 0
    dying = False

    def on_signal(signum, frame):
        nonlocal interrupts, dying
        if dying:  # already ending the job: a further signal changes nothing
            return
        if signum == signal.SIGINT and interrupts == 0:
            interrupts += 1
            print("interrupted: stopping after the current step (Ctrl-C again to stop now)", file=sys.stderr)
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(KeyboardInterrupt))
            return
        dying = True
        raise _Kill(signum)

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    except _Kill as kill:
        _die(kill.signum, end_runs, job_tmp)
    finally:
        for number, handler in previous.items():  # after a Ctrl-C the job is ending (130): a second one
            ignore = interrupts and number == signal.SIGINT  # while it unwinds must not kill it half-way
            signal.signal(number, signal.SIG_IGN if ignore else handler)
        tempfile.tempdir = saved_tmp
        shutil.rmtree(job_tmp, ignore_errors=True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def remove_dead_job_folders(root: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders (in `root`, default the system's) of jobs whose process is gone
    (killed with -9: nothing of theirs ran to clean up). A folder whose PID now belongs to a younger
    process (the PID was reused) is a dead job's too."""
    import psutil

    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{JOB_FOLDER_PREFIX}*-*"):
        pid = folder.name[len(JOB_FOLDER_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir():
            continue
        try:
            alive = psutil.Process(int(pid)).create_time() <= folder.stat().st_mtime + 1
        except psutil.Error:
            alive = False
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def stop_orphaned_workers() -> list[int]:
    """Stop this user's joblib (loky) worker processes whose parent job is gone (killed with -9:
    they linger, holding hundreds of MB, until their idle timeout). Returns their PIDs."""
    import psutil

    stopped = []
    for process in psutil.process_iter(["pid", "ppid", "uids", "cmdline"]):
        try:
            command = " ".join(process.info["cmdline"] or [])
            orphaned = process.info["ppid"] == 1 or not _is_python(process.info["ppid"])  # reparented
            if ("loky" in command and "joblib" in command and orphaned
                    and process.info["uids"].real == os.getuid()):
                process.kill()
                stopped.append(process.info["pid"])
        except psutil.Error:
            continue
    return stopped


def _is_python(pid: int) -> bool:
    import psutil

    try:
        return "python" in psutil.Process(pid).name().lower()
    except psutil.Error:
        return False


def exit_on_sigterm() -> None:
    """For commands without runs (`rakuten.predict`): SIGTERM unwinds like Ctrl-C, so their
    cleanup runs, and the process exits 143."""
    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _die(signum: int, end_runs: Callable[[str], list[str]], job_tmp: str) -> None:
    """End the job now: runs KILLED, partial and temporary files removed, exit 128 + signum."""
    name = signal.Signals(signum).name
    waited = _critical.acquire(timeout=CRITICAL_WAIT_SECONDS)  # let a registration finish
    if not waited:
        log.warning("%s: a registration still running after %ds is cut short", name, CRITICAL_WAIT_SECONDS)
    ended = end_runs("KILLED")
    for path in list(_partial_files):
        path.unlink(missing_ok=True)
    shutil.rmtree(job_tmp, ignore_errors=True)
    print(f"killed by {name}: " + (f"run {', '.join(ended)} ended KILLED" if ended else "no run was open"),
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)
