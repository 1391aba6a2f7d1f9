"""How long MLflow's HTTP calls wait and retry: long for a job's run (a server may restart), short
where a failure must be reported quickly; what counts as an outage."""

from __future__ import annotations

import contextlib
import os

import requests


def retry_http_for(seconds: float, timeout: int = 30) -> None:
    """MLflow's HTTP retries (urllib3, backoff 0, 2, 4, 8 ... s) spread over about `seconds`, each
    request waiting at most `timeout` s. Variables the user set win."""
    retries = next((n for n in range(1, 11) if 2 ** n - 2 >= seconds), 10)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))


@contextlib.contextmanager
def quick_http():
    """Few, short HTTP retries: ending a run after a failure must not wait minutes for a dead store."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def is_outage(error: BaseException) -> bool:
    """The store did not answer (after MLflow's retries), as opposed to answering with an error; a
    server killed in the middle of a reply breaks the connection (`IncompleteRead`)."""
    text = str(error)
    return isinstance(error, requests.ConnectionError) or any(
        marker in text for marker in ("Max retries exceeded", "Connection refused", "Read timed out",
                                      "Connection broken", "Connection aborted", "RemoteDisconnected"))
