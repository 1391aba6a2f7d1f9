"""`python -m rakuten.runs --repair` after faults that left no process to clean up.

Faults: `mlflow run` made a run and failed before the project's code ran (no conda, say): RUNNING
forever, with no process tag to check; a job killed with -9 left its temporary folder behind.
Expected: both are cleaned (the launch once older than --stale-minutes; a young one, or a live
job's folder, is left alone) and the summary says how many, once."""

import pytest
import os
import subprocess
import sys
import time

import mlflow
from mlflow import MlflowClient

from rakuten import PROJECT_ROOT
from tests.helpers.jobs import job_env

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_repair_ends_launches_that_never_began_and_removes_dead_jobs_folders(store, tmp_path):
    client = MlflowClient()
    launch = {"mlflow.source.type": "PROJECT", "mlflow.project.entryPoint": "main"}
    old = client.create_run("0", start_time=int((time.time() - 3600) * 1000), tags=launch).info.run_id
    young = client.create_run("0", tags=launch).info.run_id
    temp = tmp_path / "tmp"
    dead = temp / f"rakuten-job-{dead_pid()}-abc123"
    alive = temp / f"rakuten-job-{os.getpid()}-def456"
    for folder in (dead, alive):
        folder.mkdir(parents=True)
    (dead / "partial.joblib").write_bytes(b"x")
    result = subprocess.run([sys.executable, "-m", "rakuten.runs", "--repair"], cwd=PROJECT_ROOT,
                            env={**job_env(store, temp)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ended FAILED") == 1 and result.stderr == ""
    assert "ended FAILED 1 runs" in result.stdout and "removed 1 temporary folders" in result.stdout
    assert client.get_run(old).info.status == "FAILED" and "never began" in client.get_run(old).data.tags[
        "rakuten.ended_by"]
    assert client.get_run(young).info.status == "RUNNING"
    assert not dead.exists() and alive.exists()
    mlflow.MlflowClient().set_terminated(young)


def test_a_live_launch_is_never_ended_as_dead_and_a_killed_one_is(store, tmp_path):
    """Finding 8: `mlflow run . -e serve` serving requests was ended FAILED by `--repair --stale-minutes
    0.5` ("its job never began"). Expected: the served command marks its launch's run with its process:
    repair leaves it while it lives, and ends it once it is gone."""
    from rakuten.train import run
    from tests.helpers.stores import SPLIT_ONLY, config
    from tests.helpers.services import free_port, stop

    run(config(SPLIT_ONLY, "data.max_rows=300"))  # a champion to serve
    client = MlflowClient()
    launch = {"mlflow.source.type": "PROJECT", "mlflow.project.entryPoint": "serve"}
    launched = client.create_run("0", start_time=int((time.time() - 3600) * 1000), tags=launch).info.run_id
    port, log = free_port(), tmp_path / "serve.log"
    with open(log, "w") as out:  # what `mlflow run` starts: the entry point's command, its run in MLFLOW_RUN_ID
        server = subprocess.Popen([sys.executable, "-m", "rakuten.serve", "--port", str(port)], cwd=PROJECT_ROOT,
                                  env={**job_env(store, tmp_path), "MLFLOW_RUN_ID": launched}, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "serving " not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        repair = [sys.executable, "-m", "rakuten.runs", "--repair", "--stale-minutes", "0"]
        done = subprocess.run(repair, cwd=PROJECT_ROOT, env=job_env(store, tmp_path), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and "ended FAILED 0 runs" in done.stdout, done.stdout + done.stderr
        assert client.get_run(launched).info.status == "RUNNING"
    finally:
        stop(server, sig=9)
    done = subprocess.run(repair, cwd=PROJECT_ROOT, env=job_env(store, tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert "ended FAILED 1 runs" in done.stdout, done.stdout + done.stderr
    assert client.get_run(launched).info.status == "FAILED"
    assert "is gone" in client.get_run(launched).data.tags["rakuten.ended_by"]


def _is_loky_worker(process) -> bool:
    """Whether a child of the job is a joblib (loky) worker; one that ended or became a zombie
    between listing and reading its command line is not (CI saw psutil raise ZombieProcess there)."""
    import psutil

    try:
        return "loky" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def _alive(process) -> bool:
    """Running and not a zombie; a process that ends while being read is not alive."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_repair_stops_the_worker_processes_of_a_job_killed_with_minus_nine(tmp_path, shared_dir):
    """Finding 13: two joblib workers (190 MB each) outlived a training killed with -9 by over 13 min."""
    import psutil

    from tests.helpers.jobs import start_train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = start_train(uri, tmp_path, "model=linearsvc", "n_jobs=2", "cache.enabled=false", f"data.dir={shared_dir}")
    deadline, workers = time.monotonic() + 180, []
    while not workers:
        assert job.poll() is None and time.monotonic() < deadline, (tmp_path / "job.log").read_text()[-2000:]
        workers = [p for p in psutil.Process(job.pid).children(recursive=True) if _is_loky_worker(p)]
        time.sleep(0.2)
    job.kill()
    job.wait(timeout=30)
    time.sleep(1)
    assert any(_alive(w) for w in workers), "nothing outlived the job"
    done = subprocess.run([sys.executable, "-m", "rakuten.runs", "--repair"], cwd=PROJECT_ROOT,
                          env=job_env(uri, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stopped = int(done.stdout.split("stopped ")[1].split()[0])
    assert stopped >= 1
    psutil.wait_procs(workers, timeout=10)
    assert not any(_alive(w) for w in workers)


def test_a_served_launch_lives_with_its_launcher(store, tmp_path):
    """Findings 11 and 12 of the fourth round: `runs --repair --stale-minutes 0` 1.5 s after `mlflow run -e
    serve` started marked the launch FAILED while it then served; SIGTERM to `mlflow run . -e serve` left the
    server answering under PID 1 and the launch RUNNING. Expected: a launch whose process is alive is never
    ended; the launcher's end stops the server and ends the launch KILLED."""
    import signal

    import requests

    from rakuten.train import run
    from tests.helpers.services import free_port, stop
    from tests.helpers.stores import SPLIT_ONLY, config

    run(config(SPLIT_ONLY, "data.max_rows=300"))  # a champion to serve
    port, log = free_port(), tmp_path / "launch.log"
    env = {**job_env(store, tmp_path), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # set_experiment sets one
        env.pop(key, None)
    with open(log, "w") as out:
        launcher = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "mlflow"), "run", str(PROJECT_ROOT),
                                     "-e", "serve", "--env-manager", "local", "-P", f"port={port}"], cwd=tmp_path,
                                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (launches := [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                                if r.data.tags.get("mlflow.project.entryPoint") == "serve"]):
            assert launcher.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        launched = launches[0].info.run_id
        repair = [sys.executable, "-m", "rakuten.runs", "--repair", "--stale-minutes", "0"]
        done = subprocess.run(repair, cwd=PROJECT_ROOT, env=job_env(store, tmp_path), capture_output=True,
                              text=True, timeout=120)  # seconds after the launch, before it serves
        assert done.returncode == 0 and "ended FAILED 0 runs" in done.stdout, done.stdout + done.stderr
        while True:
            assert launcher.poll() is None and time.monotonic() < deadline + 120, log.read_text()[-2000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert MlflowClient().get_run(launched).info.status == "RUNNING"
        launcher.send_signal(signal.SIGTERM)  # the launcher alone, as `kill PID` does
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/ping", timeout=2)
            except requests.ConnectionError:
                break
            assert time.monotonic() < deadline, "the server kept answering after its launcher was gone"
            time.sleep(0.5)
        deadline = time.monotonic() + 30
        while MlflowClient().get_run(launched).info.status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert MlflowClient().get_run(launched).info.status == "KILLED"
    finally:
        stop(launcher, sig=9)
