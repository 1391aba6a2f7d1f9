"""`python -m rakuten.team_server`: the team's MLflow server, with a lock on its door.

`start` runs `mlflow server` with MLflow's basic-auth app and the zoo's roles on top of it
(`rakuten.team_app`; the `team` extra installs what it needs): every request needs a user and a
password, bound to 127.0.0.1 unless `--host` says otherwise; failed logins are throttled; what the
server writes (artifacts, its keys) only its own user reads (umask 077). The
admin's password comes from `MLFLOW_AUTH_ADMIN_PASSWORD` or from a file only its owner can read
(`--admin-password-file`), never from the command line (where `ps` shows it); it creates the admin on
the first start. Users are then added by the admin:

- `add-user NAME --role reader`: may read runs and models, hence load, predict and serve them
  (the server's default permission, READ), and nothing else: no create, no write, no delete;
- `add-user NAME --role trainer`: may also create runs in the zoo's experiments (EDIT on `rakuten`,
  `rakuten-evaluations`) and change the runs it created, and register versions of the zoo's models and
  move their aliases (MANAGE on `rakuten-text`, `-image`, `-fusion`); never delete a registered model,
  an experiment or another member's run.
The first `add-user` (the admin's first use) creates the zoo's experiments and registered models:
the admin owns them.

The new user's password comes from `RAKUTEN_USER_PASSWORD` or `--password-file`. Members then set
`MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`; a wrong password is one 401 line.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from rakuten import defaults
from rakuten.cli import command
from rakuten.team_app import TEAM_DIR_ENV

ROLES = ("reader", "trainer")
ZOO_EXPERIMENTS = (defaults.EXPERIMENT, defaults.EVALUATIONS)
MIN_PASSWORD = 12


def secret_from(variable: str, file: str | None, what: str) -> str:
    """A password from the environment or from a file only its owner may read; one line if neither."""
    if file:
        value = private_file(Path(file), "a password file").read_text().strip()
    else:
        value = os.environ.get(variable, "")
    if not value:
        raise ValueError(f"{what}: set {variable} or give a password file (never the password as an argument)")
    if len(value) < MIN_PASSWORD:
        raise ValueError(f"{what} must be at least {MIN_PASSWORD} characters (MLflow's basic auth refuses shorter)")
    return value


def auth_config(folder: Path, auth_db_uri: str) -> Path:
    """MLflow's basic-auth settings (no password in them: the admin's comes from the environment)."""
    from rakuten.features.signing import make_private

    make_private(folder)
    path = folder / "basic_auth.ini"
    path.write_text("[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = {auth_db_uri}\nadmin_username = admin\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                    # a checked password is trusted for 30 s per worker (each check is a slow PBKDF2 hash)
                    "auth_cache_ttl_seconds = 30\n")
    path.chmod(0o600)
    return path


def private_file(path: Path, what: str) -> Path:
    """`path`, refused (one line naming it) unless it is yours and no one else may read or write it."""
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path}: {what} must be yours and mode 0600 (chmod 600 {path})")
    return path


def flask_key(folder: Path) -> str:
    """The server's CSRF key (MLflow's basic-auth app needs one), made once, mode 0600, kept across
    restarts; an existing one that others may read is refused, like a loose password file."""
    import secrets

    path = folder / "flask.key"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return private_file(path, "the server's key file").read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def start(args) -> int:
    import importlib.util

    if importlib.util.find_spec("flask_wtf") is None:
        raise ValueError("the team server needs the team extra (MLflow's basic-auth app): pip install -e '.[team]'")
    password = secret_from("MLFLOW_AUTH_ADMIN_PASSWORD", args.admin_password_file, "the admin's password")
    folder = Path(args.config_dir).expanduser()
    config = auth_config(folder, args.auth_db_uri or f"sqlite:///{folder / 'basic_auth.db'}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the server listens on {args.host}: put TLS in front of it (basic auth sends passwords "
              "in every request)", file=sys.stderr)
    mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
    print(f"team server on http://{args.host}:{args.port} (basic auth, the zoo's roles; admin 'admin')", flush=True)
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or flask_key(folder),
           TEAM_DIR_ENV: str(folder),
           "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore:starlette.middleware.wsgi is deprecated"}
    os.umask(0o077)  # artifacts, folders and files the server writes: its own user's alone
    os.execve(mlflow_cli, [mlflow_cli, "server", "--app-name", "rakuten-team",
                           "--backend-store-uri", args.backend_store_uri,
                           "--artifacts-destination", args.artifacts_destination,
                           "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)],
              defaults.server_environment(env))
    return 0  # not reached: the server replaces this process


def add_user(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the server package's imports
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")  # MLflow's, not ours
    import mlflow
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    from rakuten.registry.versions import MODALITIES, registry_name
    from rakuten.cli import open_store

    registered = [registry_name(modality) for modality in MODALITIES]  # a trainer manages each modality's model
    uri = open_store(args.tracking_uri)
    password = secret_from("RAKUTEN_USER_PASSWORD", args.password_file, f"the password of {args.name}")
    admin = get_app_client("basic-auth", tracking_uri=uri)
    client = MlflowClient()
    for experiment in ZOO_EXPERIMENTS:  # the admin's first use: the zoo's experiments and models, the admin's
        if client.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment)
    for name in registered:
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
    admin.create_user(args.name, password)
    if args.role == "trainer":
        for experiment in args.experiment:
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else mlflow.create_experiment(experiment)
            admin.grant_user_permission(args.name, "experiment", experiment_id, "EDIT")
        for name in registered:
            admin.grant_user_permission(args.name, "registered_model", name, "MANAGE")  # deletion: the server refuses
    can = ("read runs and models, load, predict and serve them" if args.role == "reader" else
           f"also train into {', '.join(args.experiment)} and register and promote {', '.join(registered)}")
    print(f"user {args.name} ({args.role}) may {can}")
    return 0


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rakuten.team_server",
                                     description="The team's MLflow server with authentication, and its users.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    started = verbs.add_parser("start", help="run mlflow server with basic auth (in the foreground)")
    started.add_argument("--backend-store-uri", required=True, help="postgresql+psycopg://user@host:port/mlflow")
    started.add_argument("--artifacts-destination", required=True, help="folder or s3://... the server proxies")
    started.add_argument("--auth-db-uri", default=None,
                         help="where users live (default: sqlite in --config-dir); a database of its own")
    started.add_argument("--admin-password-file", default=None,
                         help="a file (mode 0600) holding the admin's password; else $MLFLOW_AUTH_ADMIN_PASSWORD")
    started.add_argument("--config-dir", default="~/.config/rakuten/team-server")
    started.add_argument("--host", default="127.0.0.1")
    started.add_argument("--port", type=int, default=5000)
    started.add_argument("--workers", type=int, default=2)
    user = verbs.add_parser("add-user", help="as the admin (MLFLOW_TRACKING_USERNAME/PASSWORD): add a member")
    user.add_argument("name")
    user.add_argument("--role", choices=ROLES, required=True)
    user.add_argument("--password-file", default=None, help="mode 0600; else $RAKUTEN_USER_PASSWORD")
    user.add_argument("--experiment", action="append", default=None,
                      help="experiments a trainer may write (default: rakuten, rakuten-evaluations)")
    user.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    args = parser.parse_args(argv)
    if args.verb == "start":
        return start(args)
    args.experiment = args.experiment or list(ZOO_EXPERIMENTS)
    return add_user(args)


if __name__ == "__main__":
    raise SystemExit(main())
