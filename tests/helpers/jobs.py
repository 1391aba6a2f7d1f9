"""Real `python -m rakuten.<command>` processes on a throwaway store, as the fault tests start them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow import MlflowClient

from rakuten import PROJECT_ROOT
from tests.helpers.services import free_port

FAST = ("data.max_rows=300", "cache.enabled=false")


def job_env(tracking_uri: str, tmp: Path) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    return env


def start_train(tracking_uri: str, run_dir: Path, *overrides: str, log: Path | None = None) -> subprocess.Popen:
    """`python -m rakuten.train` as a user starts it, its Hydra folder and temporary files in `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out = open(log or run_dir / "job.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "rakuten.train", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT, env=job_env(tracking_uri, run_dir), stdout=out, stderr=subprocess.STDOUT, text=True,
    )


def train(tracking_uri: str, run_dir: Path, *overrides: str, timeout: int = 180) -> subprocess.CompletedProcess:
    run_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "rakuten.train", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT, env=job_env(tracking_uri, run_dir), capture_output=True, text=True, timeout=timeout,
    )


def all_runs(tracking_uri: str) -> list:
    """Every run of the store; a SQLite store is opened under the lock that jobs create it under."""
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        with FileLock(tracking_uri[len("sqlite:///"):] + ".lock", timeout=300):
            return mlflow.search_runs(search_all_experiments=True, output_format="list")
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def assert_no_run_running(tracking_uri: str) -> None:
    running = [r.info.run_id for r in all_runs(tracking_uri) if r.info.status == "RUNNING"]
    assert running == [], f"runs left RUNNING: {running}"


def champion_is_best_on_its_fingerprint(tracking_uri: str, name: str = "rakuten-text") -> tuple[str, str]:
    """(champion version, best version by logged score on the champion's fingerprint)."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    champion = client.get_model_version_by_alias(name, "champion")
    same_data = [v for v in client.search_model_versions(f"name='{name}'")
                 if v.tags.get("data_fingerprint") == champion.tags["data_fingerprint"]]
    best = max(same_data, key=lambda v: (float(v.tags["test_f1_weighted"]), -int(v.version)))
    return str(champion.version), str(best.version)


def sqlite_tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}


# every command, against a tracking URI that fails: `run_command(name, uri, tmp_path)`
COMMANDS = {
    "train": ["-m", "rakuten.train", "data.max_rows=300", "cache.enabled=false"],
    "promote": ["-m", "rakuten.promote"],
    "promote-dry-run": ["-m", "rakuten.promote", "--dry-run"],
    "predict": ["-m", "rakuten.predict", "{input}"],
    "explain": ["-m", "rakuten.explain"],
    "serve": ["-m", "rakuten.serve", "--port", "{port}"],
    "runs": ["-m", "rakuten.runs", "--repair"],
    "ui": ["-m", "rakuten.ui"],
    "eda": ["experiments/eda.py", "--data-dir", "data/sample"],
    "report": ["experiments/report.py", "--experiment", "rakuten"],
}


def run_command(name: str, uri: str, tmp_path) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "X.csv").write_text(",designation,description,productid,imageid\n1,Jeu PS4,,1,2\n")
    args = [a.format(input=tmp_path / "X.csv", port=free_port()) for a in COMMANDS[name]]
    if name == "train":
        args.append(f"hydra.run.dir={tmp_path / 'job'}")
    started = time.monotonic()
    result = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=job_env(uri, tmp_path),
                            capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started
