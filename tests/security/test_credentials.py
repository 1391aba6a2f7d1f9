"""Fault: the tracking server answers 500 to everything, and its URI holds a password.

Expected: every command (train, promote, predict, explain, serve, runs, ui, the experiments)
fails with one line, exit 2, within 20 s, and the password is nowhere in what it prints. Before:
`promote` printed `http://alice:S3cr3tPw@...` and waited about 250 s; `predict`, `explain`,
`serve` and `runs --repair` stayed silent as long."""

import pytest

from tests.helpers.http import scripted_server
from tests.helpers.jobs import COMMANDS, run_command

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

PASSWORD = "S3cr3tPw"

@pytest.fixture(scope="module")
def failing_server():
    with scripted_server(lambda path: (500, f"internal error at {path}".encode())) as port:
        yield f"http://alice:{PASSWORD}@127.0.0.1:{port}"


@pytest.mark.parametrize("name", COMMANDS)
def test_a_failing_server_gets_one_line_and_no_password(failing_server, tmp_path, name):
    result, seconds = run_command(name, failing_server, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "alice:***@" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert seconds < 25, f"{name} took {seconds:.0f}s"  # interpreter start-up included
