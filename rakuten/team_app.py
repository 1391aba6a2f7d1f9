"""The team server's app: MLflow's basic-auth app with the zoo's roles and a throttle on its door.

`mlflow server --app-name rakuten-team` (what `python -m rakuten.team_server start` runs) builds
MLflow's own basic-auth app (`mlflow.server.auth.create_app`: users, passwords, per-resource
permissions) and adds three Flask hooks to it:

- `throttled` (before MLflow checks the password): a user or an address with `MAX_FAILURES` failed
  logins within `WINDOW_S` is answered 429 for a delay that doubles with each further failure
  (at most `MAX_LOCK_S`), whatever the password; the lock is one line in the server's log. The
  failures live in a SQLite file of the server's folder, so that every worker sees them.
- `zoo_rules` (after MLflow authorised the request by its permissions): what MLflow lets any
  authenticated user do, the zoo refuses (403) to everyone but an admin: creating, renaming or
  deleting an experiment or a registered model (the zoo's are made by the admin: `add-user`), and
  any other creation but a run, a model version or a logged model; and changing a run (its metrics,
  params, tags, status, artifacts) that another member created. A reader, with MLflow's READ as
  its only permission, thus reads and nothing else.
- `record_owner` (after a run is created): the run's creator, from the request's credentials, in the
  run's tag `rakuten.owner`, which only an admin may write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

OWNER_TAG = "rakuten.owner"
TEAM_DIR_ENV = "RAKUTEN_TEAM_DIR"  # the server's folder: the throttle's file lives there
# a user is locked after 5 failed logins within 10 min; an address (many users behind one) after 20
MAX_FAILURES = {"user": 5, "addr": 20}
WINDOW_S, MAX_LOCK_S = 600.0, 900.0
FIRST_LOCK_S = 5.0  # the first lock; long enough that a slow client's next try still meets it
log = logging.getLogger("rakuten.team_app")

# the API's paths, after `/api/2.0/mlflow/` (or ajax-api, 3.0): what only an admin may do
ADMIN_ONLY = re.compile(r"(experiments|registered-models)/(create|delete|restore|rename|update|set-tag|delete-tag)$|model-versions/delete$|permissions/|"
                        r"(webhooks|gateway|scorers)(/|$)")
# creations a trainer's MLflow permission (EDIT on the experiment, on the zoo's models) may allow
MEMBER_CREATIONS = re.compile(r"(runs/create|model-versions/create|logged-models)$")
# writes to one run: its id is in the body (`run_id`, `run_uuid`)
RUN_WRITES = re.compile(r"runs/(update|delete|restore|log-metric|log-parameter|set-tag|delete-tag|log-batch|"
                        r"log-model|log-inputs|log-outputs)$")
ARTIFACT_RUN = re.compile(r"mlflow-artifacts/(?:artifacts|mpu/[a-z]+)/\d+/([0-9a-f]{32})/")


def api_path(path: str) -> str:
    """`/api/2.0/mlflow/runs/create` -> `runs/create`; '' for what is not MLflow's REST API."""
    found = re.search(r"/(?:ajax-)?api/[23]\.0/mlflow/(.+)$", path)
    if found:
        return found.group(1)
    found = re.search(r"/api/[23]\.0/(mlflow-artifacts/.+)$", path)
    return found.group(1) if found else ""


class Throttle:
    """Failed logins per key (`user:NAME`, `addr:IP`) in a SQLite file shared by the workers."""

    def __init__(self, path: Path):
        self.path = path
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, count INTEGER, first REAL, "
                       "locked_until REAL)")

    @contextlib.contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; BEGIN where needed
        try:
            yield db
        finally:
            db.close()

    def wait(self, keys: list[str]) -> float:
        """Seconds until every key may try again (0: none is locked)."""
        now = time.time()
        with self._db() as db:
            found = db.execute(f"SELECT MAX(locked_until) FROM failures WHERE key IN ({','.join('?' * len(keys))})",
                               keys).fetchone()[0]
        return max(0.0, (found or 0.0) - now)

    def failed(self, keys: list[str]) -> list[tuple[str, int, float]]:
        """Count a failure for each key; returns the keys it locked: (key, failures, seconds)."""
        now, locked = time.time(), []
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            for key in keys:
                row = db.execute("SELECT count, first FROM failures WHERE key = ?", (key,)).fetchone()
                count, first = (row if row and now - row[1] < WINDOW_S else (0, now))
                count, allowed = count + 1, MAX_FAILURES[key.split(":", 1)[0]]
                delay = min(FIRST_LOCK_S * 2.0 ** (count - allowed), MAX_LOCK_S) if count >= allowed else 0.0
                db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)", (key, count, first, now + delay))
                if delay:
                    locked.append((key, count, delay))
            db.execute("COMMIT")
        return locked

    def succeeded(self, keys: list[str]) -> None:
        with self._db() as db:
            db.execute(f"DELETE FROM failures WHERE key IN ({','.join('?' * len(keys))})", keys)


def _login_keys() -> list[str]:
    from flask import request

    keys = [f"addr:{request.remote_addr}"]
    if request.authorization is not None and request.authorization.username:
        keys.insert(0, f"user:{request.authorization.username}")
    return keys


def _forbidden(why: str):
    from flask import jsonify

    response = jsonify(error_code="PERMISSION_DENIED", message=why)
    response.status_code = 403
    return response


def _is_admin(username: str) -> bool:
    from mlflow.server.auth import store

    return bool(store.get_user(username).is_admin)


def _run_ids(path: str) -> list[str]:
    """The runs a request writes to: in its body, or in an artifact path."""
    from flask import request

    found = ARTIFACT_RUN.search(path)
    if found:
        return [found.group(1)]
    body = request.get_json(silent=True) or {}
    return [value for value in (body.get("run_id"), body.get("run_uuid")) if value][:1]


def _registered_model_exists() -> bool:
    from flask import request
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_model_registry_store

    try:
        _get_model_registry_store().get_registered_model((request.get_json(silent=True) or {}).get("name", ""))
        return True
    except MlflowException:
        return False


def _sets_owner_tag(path: str) -> bool:
    from flask import request

    body = request.get_json(silent=True) or {}
    tags = [body.get("key")] + [tag.get("key") for tag in body.get("tags") or [] if isinstance(tag, dict)]
    return path.endswith(("set-tag", "delete-tag", "log-batch", "runs/create")) and OWNER_TAG in tags


def zoo_rules():
    """Refuse (403) what the zoo's roles forbid and MLflow's permissions allow; None lets it pass."""
    from flask import request
    from mlflow.server.handlers import _get_tracking_store

    path = api_path(request.path)
    if not path or request.method in ("GET", "HEAD", "OPTIONS") or path.endswith(("/search", "get-history-bulk")):
        return None  # reads (searches are POSTs)
    username = request.authorization.username if request.authorization else ""
    if not username or _is_admin(username):
        return None
    if path.endswith("registered-models/create") and _registered_model_exists():
        return None  # MLflow answers RESOURCE_ALREADY_EXISTS, which `mlflow.register_model` expects
    if ADMIN_ONLY.search(path) or (path.endswith(("/create", "/register")) and not MEMBER_CREATIONS.search(path)):
        return _forbidden(f"{username} may not {request.method} {path}: only the admin creates, renames or deletes "
                          "experiments and registered models")
    if _sets_owner_tag(path):
        return _forbidden(f"the tag {OWNER_TAG} is the server's: who created the run")
    if RUN_WRITES.search(path) or path.startswith("mlflow-artifacts"):
        for run_id in _run_ids(path):
            owner = _get_tracking_store().get_run(run_id).data.tags.get(OWNER_TAG)
            if owner != username:
                return _forbidden(f"{username} may not change run {run_id}: it is "
                                  + (f"{owner}'s" if owner else "not theirs (no owner recorded)"))
    return None


def record_owner(response):
    """After a run is created, its creator in the run's `rakuten.owner` tag."""
    from flask import request
    from mlflow.entities import RunTag
    from mlflow.server.handlers import _get_tracking_store

    if response.status_code == 200 and api_path(request.path) == "runs/create" and request.authorization:
        run_id = (response.get_json(silent=True) or {}).get("run", {}).get("info", {}).get("run_id")
        if run_id:
            _get_tracking_store().set_tag(run_id, RunTag(OWNER_TAG, request.authorization.username))
    return response


def create_app():
    """MLflow's basic-auth app with the zoo's hooks: the `rakuten-team` app of `mlflow server --app-name`."""
    from flask import jsonify, request
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as basic_auth_app

    throttle = Throttle(Path(os.environ.get(TEAM_DIR_ENV, ".")) / "login_failures.db")

    def throttled():
        wait = throttle.wait(_login_keys())
        if wait > 0:
            response = jsonify(error_code="TOO_MANY_REQUESTS",
                               message=f"too many failed logins: try again in {wait:.0f} s")
            response.status_code = 429
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        return None

    def count_login(response):
        if request.authorization is None or response.status_code == 429:
            return response
        if response.status_code == 401:
            for key, count, delay in throttle.failed(_login_keys()):
                log.warning("login throttled: %s locked for %.0f s after %d failed logins within %.0f min",
                            key, delay, count, WINDOW_S / 60)
        else:
            throttle.succeeded(_login_keys())
        return response

    built = basic_auth_app(flask_app)  # registers MLflow's authentication and permission checks first
    flask_app.before_request_funcs.setdefault(None, []).insert(0, throttled)  # before the password is checked
    flask_app.before_request(zoo_rules)  # after MLflow authorised the request
    flask_app.after_request(record_owner)
    flask_app.after_request(count_login)
    return built
