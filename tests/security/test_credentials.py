"""Fault: the tracking server answers 500 to everything, and its URI holds a password.

Expected: every command (train, promote, predict, explain, serve, runs, ui, the experiments)
fails with one line, exit 2, within 20 s, and the password is nowhere in what it prints. Before:
`promote` printed `http://alice:S3cr3tPw@...` and waited about 250 s; `predict`, `explain`,
`serve` and `runs --repair` stayed silent as long."""

import http.server
import subprocess
import sys
import threading
import time

import pytest

from rakuten import PROJECT_ROOT
from tests.reliability.conftest import job_env
from tests.services import free_port

PASSWORD = "S3cr3tPw"

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


class _Failing(http.server.BaseHTTPRequestHandler):
    def _fail(self):
        body = f"internal error at {self.path}".encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _fail

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def failing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://alice:{PASSWORD}@127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run_command(name: str, uri: str, tmp_path) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "X.csv").write_text(",designation,description,productid,imageid\n1,Jeu PS4,,1,2\n")
    args = [a.format(input=tmp_path / "X.csv", port=free_port()) for a in COMMANDS[name]]
    if name == "train":
        args.append(f"hydra.run.dir={tmp_path / 'job'}")
    started = time.monotonic()
    result = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=job_env(uri, tmp_path),
                            capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started


@pytest.mark.parametrize("name", COMMANDS)
def test_a_failing_server_gets_one_line_and_no_password(failing_server, tmp_path, name):
    result, seconds = run_command(name, failing_server, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "alice:***@" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert seconds < 25, f"{name} took {seconds:.0f}s"  # interpreter start-up included
