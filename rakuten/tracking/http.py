"""How long MLflow's HTTP calls wait and retry: long for a job's run (a server may restart), short
where a failure must be reported quickly; what counts as an outage; a reply cut off midway called again."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time

import requests

log = logging.getLogger("rakuten.tracking")
BROKEN_REPLY_CALLS = 3  # a call whose reply a dying server cut off is made this many times at most


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


def broken_reply(error: BaseException) -> bool:
    """The server died after it began its reply (`IncompleteRead`): requests reads a reply's body
    after urllib3 hands it over, so MLflow's retries (urllib3's) never see it."""
    text = str(error)
    return ("IncompleteRead" in text or "Connection broken" in text) and "Max retries exceeded" not in text


def called_again_on_broken_reply(function):
    """`function` (a read, or a logging call that may be made twice: the same params, tags,
    artifacts and metrics again) called again when the server's reply broke off, up to
    `BROKEN_REPLY_CALLS` times; the call again waits out the outage with MLflow's retries."""

    @functools.wraps(function)
    def called(*args, **kwargs):
        for attempt in range(1, BROKEN_REPLY_CALLS + 1):
            try:
                return function(*args, **kwargs)
            except Exception as error:
                if attempt == BROKEN_REPLY_CALLS or not broken_reply(error):
                    raise
                log.warning("the tracking store's reply broke off (%s): %s again", type(error).__name__,
                            function.__name__)
                time.sleep(1)

    return called
