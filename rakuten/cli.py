"""How every command starts and ends: one error path, one console, one store check.

`@command` wraps a command's `main(argv) -> int`:
- everything it prints, MLflow's and Python's own messages and tracebacks included, passes through
  a console that masks the password of every URL (`user:***@host`);
- a user error (bad data, a bad argument, a store that is down or refuses) is one line `error: ...`
  and exit 2 (`HYDRA_FULL_ERROR=1`, Hydra's own switch: its traceback too, to find the failing call);
  Ctrl-C is exit 130; anything else is a bug and keeps its (masked) traceback, exit 1.
`open_store` is the check every command makes before it uses the store: it fails within about 20 s
with one line, and a wait longer than a few seconds says what it waits for (`announce`).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import functools
import io
import os
import sys
import threading
import traceback
from collections.abc import Callable

from rakuten.tracking import redact


class _Masked(io.TextIOBase):
    """A text stream that masks credentials in what it writes, line by line."""

    def __init__(self, stream):
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, self._pending = self._pending.rsplit("\n", 1)
            self.stream.write(redact(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(redact(self._pending))
            self._pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def masked_console():
    """stdout and stderr masked for the block (already masked ones are left as they are)."""
    if isinstance(sys.stdout, _Masked):
        yield
        return
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masked(sys.stdout), _Masked(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved


def user_errors() -> tuple[type[BaseException], ...]:
    """What a command reports in one line: its own errors, the store's, files it cannot read or write."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    from rakuten.data import DataError
    from rakuten.tracking import TrackingError

    return DataError, TrackingError, MlflowException, RequestException, LookupError, ValueError, OSError


class ExitStatus(enum.IntEnum):
    """What every command's exit code means."""

    OK = 0
    BUG = 1  # a traceback follows
    USER_ERROR = 2  # one line `error: ...` says what to fix
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM


class Outcome:
    """The exit code `error_path` settled on (OK while nothing went wrong)."""

    code = ExitStatus.OK


@contextlib.contextmanager
def error_path(more_user_errors: tuple[type[BaseException], ...] = (), interrupted: str = "interrupted"):
    """The block under the rules above: what it prints masked; an error it raises printed as they
    say and swallowed, its exit code left in the `Outcome` yielded."""
    from rakuten.tracking import describe

    outcome = Outcome()
    with masked_console():
        try:
            yield outcome
        except KeyboardInterrupt:
            print(interrupted, file=sys.stderr)
            outcome.code = ExitStatus.INTERRUPTED
        except (*user_errors(), *more_user_errors) as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                traceback.print_exc()
            print(f"error: {describe(error)}", file=sys.stderr)
            outcome.code = ExitStatus.USER_ERROR
        except Exception:  # a bug: its traceback, secrets masked by the console
            traceback.print_exc()
            outcome.code = ExitStatus.BUG


def command(main: Callable[..., int | None]) -> Callable[..., int]:
    """The command's `main`, under the rules above."""

    @functools.wraps(main)
    def guarded(*args, **kwargs) -> int:
        with error_path() as outcome:
            return main(*args, **kwargs) or 0
        return outcome.code

    return guarded


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of 1 or more (argparse names the flag in its one-line error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def store_options(model_uri: str | None = None, verbose: bool = True) -> argparse.ArgumentParser:
    """The options the commands share, as an argparse parent parser: `--model-uri` (where the command
    loads a model; `model_uri` is its default), `--tracking-uri`, and `-v` where it has MLflow's console."""
    parent = argparse.ArgumentParser(add_help=False)
    if model_uri is not None:
        parent.add_argument("--model-uri", default=model_uri, help="the model to use (default: %(default)s)")
    parent.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    if verbose:
        parent.add_argument("-v", "--verbose", action="store_true", help="MLflow's own console output too")
    return parent


@contextlib.contextmanager
def announce(what: str, after: float = 5.0):
    """Say on stderr what the block waits for, once it has taken `after` seconds."""
    timer = threading.Timer(after, lambda: print(f"... {what} (waited {after:.0f}s so far)", file=sys.stderr,
                                                 flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def open_store(configured_uri: str | None, retry_seconds: float = 6) -> str:
    """Point MLflow at the store and check that it answers, as `rakuten.train` does, for commands
    that read it (predict, promote, explain, serve, runs, ui): a server that does not answer
    `/health`, or a store that errors, is one `TrackingError` within about 20 s."""
    import mlflow
    from mlflow import MlflowClient

    from rakuten import tracking

    uri = tracking.resolve_tracking_uri(configured_uri)
    if uri.startswith(("http://", "https://")):
        tracking.retry_http_for(retry_seconds, timeout=5)
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as error:
            raise tracking.TrackingError(f"MLflow tracking server {uri} is unreachable: {error}") from error
    mlflow.set_tracking_uri(uri)
    try:
        with announce(f"waiting for the tracking store {uri} to answer"), tracking.muted():
            MlflowClient().search_experiments(max_results=1)
    except Exception as error:  # the store answers with many exception types
        raise tracking.TrackingError(f"cannot use the tracking store {uri}: {tracking.one_line(error)}") from error
    tracking.mark_launch()  # under `mlflow run`: its run is alive while this command is
    return uri


def load_model(uri: str):
    """The pyfunc behind `uri`; any failure is one `TrackingError` naming the URI."""
    import mlflow.pyfunc

    from rakuten import tracking

    try:
        with announce(f"loading {uri}"), tracking.muted():
            return mlflow.pyfunc.load_model(uri)
    except Exception as error:  # MLflow raises several types for a bad URI or an unreachable store
        raise tracking.TrackingError(f"cannot load model {uri}: {tracking.one_line(error)}") from error
