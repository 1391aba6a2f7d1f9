"""The tracking store and its safety: which URI, a check that it answers and can be written, a new
SQLite store created under a lock, the experiment made ready for many concurrent jobs."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rakuten import PROJECT_ROOT
from rakuten.tracking.console import one_line, redact
from rakuten.tracking.http import is_outage, quick_http, retry_http_for
from rakuten.tracking.run_lifecycle import end_orphaned_runs, launch_experiment
from rakuten.tracking.view import EXPERIMENT_TAGS, set_runs_view

log = logging.getLogger("rakuten.tracking")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used."""


def resolve_tracking_uri(configured: str | None) -> str:
    """An explicit `mlflow.tracking_uri` wins, then `MLFLOW_TRACKING_URI`, then the project's
    `sqlite:///<repo>/mlflow.db`. Relative SQLite paths are made absolute."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, None for other stores."""
    return Path(uri[len("sqlite:///"):].split("?")[0]) if uri.startswith("sqlite:///") else None


def connect(configured_uri: str | None, experiment: str, retry_seconds: float = 120) -> str:
    """Point MLflow at the store and experiment, ready for many concurrent jobs.

    Fails within seconds when the server does not answer or the SQLite file cannot be written;
    once connected, HTTP calls are retried with backoff for about `retry_seconds`. A new SQLite
    store is created (and migrated) under a file lock beside it: MLflow corrupts a store that
    several processes create at once. Runs that this machine's dead processes left RUNNING are
    ended FAILED.
    """
    uri = resolve_tracking_uri(configured_uri)
    if uri.startswith(("http://", "https://")):
        retry_http_for(retry_seconds)
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as error:
            raise TrackingError(redact(f"MLflow tracking server {uri} is unreachable: {error}")) from error
        mlflow.set_tracking_uri(uri)
        try:  # a server whose /health answers but whose API fails: said within seconds, not after the retries
            with quick_http():
                MlflowClient().search_experiments(max_results=1)
        except Exception as error:  # the store answers with many exception types
            raise TrackingError(redact(f"cannot use the tracking store {uri}: {one_line(error)}")) from error
    database = sqlite_path(uri)
    if database is not None:
        check_writable(database)
    mlflow.set_tracking_uri(uri)
    try:
        with _store_lock(database):
            MlflowClient().search_experiments(max_results=1)  # creates and migrates a new store
            experiment_id = launch_experiment(experiment)  # under `mlflow run`: its run already has one
            if experiment_id is None:
                experiment_id = mlflow.set_experiment(experiment_id=ensure_experiment(experiment, database)).experiment_id
            set_runs_view(experiment_id)
        repaired = end_orphaned_runs([experiment_id])
        if repaired:
            log.warning("ended FAILED %d runs left RUNNING by processes that are gone: %s", len(repaired), repaired)
    except TrackingError:
        raise
    except Exception as error:  # the store answers with many exception types
        raise TrackingError(redact(f"cannot use experiment {experiment!r} at {uri}: {one_line(error)}")) from error
    return uri


def ensure_experiment(name: str, database: Path | None = None) -> str:
    """The id of experiment `name`, created if needed, tagged as custom model development. On a
    SQLite store its artifacts go beside the database (`<folder>/mlruns/<name>`), not into
    whatever folder the first job happened to start in."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if database is not None:
        location = (database.parent / "mlruns" / re.sub(r"[^\w.-]", "_", name)).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def check_writable(database: Path) -> None:
    """Refuse at once a SQLite store that cannot be written (MLflow would retry for minutes)."""
    if not database.parent.is_dir():
        raise TrackingError(f"folder of the tracking database does not exist: {database.parent}")
    try:
        if database.exists():
            open(database, "r+b").close()
        with tempfile.TemporaryFile(dir=database.parent):  # SQLite writes its journal beside the file
            pass
    except OSError as error:
        raise TrackingError(f"the tracking store {database} is not writable ({error.strerror}): "
                            "fix its permissions or set mlflow.tracking_uri") from error


def _store_lock(database: Path | None):
    if database is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{database}.lock", timeout=300)


def registry_lock(name: str, key: str):
    """A lock for one registry action on `name` (`key`: the champion and data it is about), shared by
    the jobs of this machine on this store: beside a SQLite store, else in ~/.cache/rakuten/locks."""
    import hashlib

    from filelock import FileLock

    database = sqlite_path(mlflow.get_tracking_uri())
    folder = database.parent if database is not None else Path.home() / ".cache" / "rakuten" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(f"{mlflow.get_tracking_uri()}|{name}|{key}".encode()).hexdigest()[:16]
    return FileLock(str(folder / f".rakuten-registry-{digest}.lock"), timeout=3600)


def describe(error: BaseException) -> str:
    """One line for the user: an outage during a run is said as such, anything else is the error's
    message (ours already say what to fix)."""
    if is_outage(error) and not isinstance(error, TrackingError):
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
        return (f"the tracking store {redact(mlflow.get_tracking_uri())} stopped answering and still did not "
                f"after {retries} retries (raise mlflow.retry_seconds to wait longer); the run is ended FAILED "
                "once it answers again, by the next job or `python -m rakuten.runs --repair`")
    return one_line(error)


def tracking_uri() -> str:
    return mlflow.get_tracking_uri()
