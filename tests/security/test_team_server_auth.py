"""Finding 2: the team server had no lock. On the documented set-up another local user moved
`champion` with a bare curl (200). Expected: `python -m rakuten.team_server start` on PostgreSQL
refuses every anonymous request (401), a reader may predict but not move an alias (403), a wrong
password is one 401 line, and a trainer trains, promotes and predicts."""

import os
import subprocess
import sys

import pytest
import requests

from rakuten import PROJECT_ROOT
from tests.helpers.services import free_port, stop, wait_for

pytest.importorskip("flask_wtf", reason="the team extra is not installed: pip install -e '.[team]'")
ADMIN_PASSWORD = "admin-Passw0rd-for-tests"


def rakuten(env: dict, *args: str, cwd=PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def locked_server(postgres, tmp_path_factory):
    folder = tmp_path_factory.mktemp("locked-server")
    password_file = folder / "admin.password"
    password_file.write_text(ADMIN_PASSWORD)
    password_file.chmod(0o600)
    port, log = free_port(), folder / "server.log"
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    env.pop("MLFLOW_AUTH_ADMIN_PASSWORD", None)
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "rakuten.team_server", "start", "--backend-store-uri",
             postgres.create_database("locked"), "--artifacts-destination", str(folder / "artifacts"),
             "--auth-db-uri", postgres.create_database("locked_users"), "--admin-password-file", str(password_file),
             "--config-dir", str(folder / "config"), "--port", str(port), "--workers", "1"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", server, log)
        yield f"http://127.0.0.1:{port}", folder
    finally:
        stop(server)


def member(url: str, user: str | None, password: str | None, folder) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "TMPDIR": str(folder)}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    if user:
        env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    return env


def test_the_password_never_comes_from_the_command_line(tmp_path):
    done = rakuten({**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ""}, "rakuten.team_server", "start",
                   "--backend-store-uri", "sqlite:///x.db", "--artifacts-destination", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: the admin's password: set MLFLOW_AUTH_ADMIN_PASSWORD or give a password "
                                   "file (never the password as an argument)")
    loose = tmp_path / "pw"
    loose.write_text(ADMIN_PASSWORD)
    loose.chmod(0o644)
    done = rakuten(os.environ, "rakuten.team_server", "start", "--backend-store-uri", "sqlite:///x.db",
                   "--artifacts-destination", str(tmp_path), "--admin-password-file", str(loose))
    assert done.returncode == 2 and "must be yours and mode 0600" in done.stderr


def test_only_authorised_members_move_aliases_and_each_role_does_its_job(locked_server, tmp_path):
    url, folder = locked_server
    admin = member(url, "admin", ADMIN_PASSWORD, tmp_path)
    for name, role in (("rita", "reader"), ("tom", "trainer")):
        added = rakuten({**admin, "RAKUTEN_USER_PASSWORD": f"{name}-Passw0rd-42"}, "rakuten.team_server", "add-user",
                        name, "--role", role)
        assert added.returncode == 0, added.stderr[-2000:]
        assert added.stdout.startswith(f"user {name} ({role}) may ")
    rita, tom = (member(url, n, f"{n}-Passw0rd-42", tmp_path) for n in ("rita", "tom"))

    trained = rakuten(tom, "rakuten.train", "data.max_rows=300", f"hydra.run.dir={tmp_path / 'job'}",
                      f"cache.dir={tmp_path / 'cache'}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "rakuten-text v1 is champion" in trained.stdout
    promoted = rakuten(tom, "rakuten.promote")
    assert promoted.returncode == 0 and "rakuten-text@champion is v1" in promoted.stdout, promoted.stderr[-2000:]
    predicted = rakuten(rita, "rakuten.predict", str(PROJECT_ROOT / "data/sample/X_train_update.csv.gz"),
                        "--output", str(tmp_path / "y_test.csv"))
    assert predicted.returncode == 0 and (tmp_path / "y_test.csv").is_file(), predicted.stderr[-2000:]

    move = {"name": "rakuten-text", "alias": "champion", "version": "1"}
    endpoint = f"{url}/api/2.0/mlflow/registered-models/alias"
    assert requests.post(endpoint, json=move, timeout=30).status_code == 401  # the bare curl of the finding
    assert requests.post(endpoint, json=move, auth=("rita", "rita-Passw0rd-42"), timeout=30).status_code == 403
    assert requests.post(endpoint, json=move, auth=("tom", "wrong-password!"), timeout=30).status_code == 401
    assert requests.post(endpoint, json=move, auth=("tom", "tom-Passw0rd-42"), timeout=30).status_code == 200
    read_only = rakuten(rita, "rakuten.train", "data.max_rows=300", f"hydra.run.dir={tmp_path / 'job2'}",
                        f"cache.dir={tmp_path / 'cache'}")
    assert read_only.returncode == 2 and "403" in read_only.stderr and len(read_only.stderr.strip().splitlines()) == 1

    wrong = rakuten({**tom, "MLFLOW_TRACKING_PASSWORD": "not-his-password"}, "rakuten.promote")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1].startswith("error: ") and "401" in wrong.stderr
    assert "not-his-password" not in wrong.stdout + wrong.stderr
