"""What the tracking code says on the console: secrets masked, one line per error, MLflow's own
chatter kept out unless asked for."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re


# scheme://user:password@host: the password never reaches a message, a log line, a param or a tag
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")  # a `/` in it too


def redact(text: str) -> str:
    """`text` with the password of every URL in it masked."""
    return _CREDENTIALS.sub(r"\g<head>:***@", str(text))


def one_line(error: BaseException, limit: int = 500) -> str:
    """An error's message on one line, cut at `limit` characters, passwords masked."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return redact(text if len(text) <= limit else text[:limit] + " ...")


_verbose = True  # library use: MLflow prints as it always does; the commands turn it down


def set_console(verbose: bool) -> None:
    """The commands' console: without `verbose`, MLflow's own chatter (INFO lines, download bars,
    registry and run-link prints, each HTTP retry) is kept out, so what the project says shows."""
    global _verbose
    _verbose = verbose
    if not verbose:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def muted():
    """MLflow's prints (not its log records) silenced, unless verbose."""
    if _verbose:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack
