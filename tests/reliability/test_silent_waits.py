"""Fault: the tracking store is a closed port. Expected: every command fails within 20 s with one
line naming the store, exit 2 (before: over 120 s of silence for promote, predict, explain, serve
and runs --repair); a wait longer than a few seconds says what it waits for."""

import time

import pytest

from rakuten.cli import announce
from tests.helpers.jobs import COMMANDS, run_command
from tests.helpers.http import scripted_server
from tests.helpers.services import free_port

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


@pytest.mark.parametrize("name", COMMANDS)
def test_a_closed_port_fails_fast_with_one_line(tmp_path, name):
    uri = f"http://127.0.0.1:{free_port()}"
    result, seconds = run_command(name, uri, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and uri in errors[0], result.stderr
    assert seconds < 25, f"{name} took {seconds:.0f}s"  # interpreter start-up included


def test_a_long_wait_says_what_it_waits_for(capsys):
    with announce("waiting for the tracking store to answer", after=0.2):
        time.sleep(0.6)
    with announce("loading a model", after=5):
        pass
    err = capsys.readouterr().err
    assert "... waiting for the tracking store to answer (waited 0s so far)" in err and "loading" not in err


@pytest.fixture(scope="module")
def healthy_but_broken():
    """`/health` answers 200, the API 500: a server whose database is gone."""
    with scripted_server(lambda path: (200, b"OK") if path.rstrip("/") == "/health" else (500, b"internal error")) \
            as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("name", COMMANDS)
def test_a_server_whose_health_answers_but_api_fails_gets_one_line_fast(healthy_but_broken, tmp_path, name):
    """Finding 9a: `rakuten.train` stayed silent 141 s against it (the other commands said one line in 13 s)."""
    result, seconds = run_command(name, healthy_but_broken, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and healthy_but_broken in errors[0], result.stderr
    assert seconds < 25, f"{name} took {seconds:.0f}s"  # interpreter start-up included
