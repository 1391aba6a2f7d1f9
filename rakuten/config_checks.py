"""What a composed config may hold, checked before anything in it is instantiated or logged.

Anyone who may pass parameters to a launch (`mlflow run . -P overrides=...`, a sweep file, a
colleague's command line) writes the config. Two rules keep that from being a way in:
- every `_target_` names a class or function of the packages the zoo is made of (`ALLOWED_PACKAGES`:
  scikit-learn, imbalanced-learn, the project, and the estimator libraries a model yaml may name);
  `posix.mkdir`, `os.system`, `subprocess.run`... end the job in one line naming the key;
- no value holds credentials in a URI (`http://user:password@host`): they would be printed by MLflow's
  launcher and stored in params; the tracking server's credentials belong in
  `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`, a database's (an Optuna storage) in
  `PGPASSWORD` or `~/.pgpass`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT

ALLOWED_PACKAGES = ("sklearn", "imblearn", "rakuten", "lightgbm", "xgboost", "catboost")
# a URI's userinfo with a password; the password may hold any character but a space and `@` (a `/` too:
# users write `http://user:pa/ss@host` without encoding it)
_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^@\s]+@", re.IGNORECASE)


class ConfigError(ValueError):
    """The config asks for something the zoo refuses to do."""


def _walk(node, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for position, value in enumerate(node):
            yield from _walk(value, f"{path}[{position}]")
    else:
        yield path, node


def _credentials_error(key: str, value: str) -> ConfigError:
    where = ("the tracking server's credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
             if "postgres" not in value.lower() else "the database's password in PGPASSWORD or ~/.pgpass")
    return ConfigError(f"{key} holds a password in a URI: give {where}, never in a config or parameter")


def check_command_line(arguments: list[str]) -> None:
    """Refuse a command line whose overrides hold a password in a URI, before Hydra reads it: Hydra
    would write it to the run folder (`.hydra/*.yaml`), print it (`--cfg job`, a multirun's job list)."""
    for argument in arguments:
        if _CREDENTIALS.search(argument):
            key = argument.split("=", 1)[0].lstrip("+~") if "=" in argument else "an argument"
            raise _credentials_error(key, argument)


RUN_FOLDER_KEYS = ("hydra.run.dir", "hydra.sweep.dir")


def check_run_folder(arguments: list[str], cwd: Path) -> None:
    """Refuse a Hydra run or sweep folder outside the working folder (`outputs/`, `multirun/` lie there),
    the project and the temporary folders ($TMPDIR, /tmp), unless `allow_outside_outputs=true`: Hydra writes its
    `.hydra/*.yaml` and the job's log there, as whoever runs it (`hydra.run.dir=/etc` as root)."""
    overrides = dict(argument.lstrip("+~").split("=", 1) for argument in arguments if "=" in argument)
    if str(overrides.get("allow_outside_outputs", "false")).lower() == "true":
        return
    allowed = [cwd.resolve(), PROJECT_ROOT.resolve(), Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve()]
    for key in RUN_FOLDER_KEYS:
        if key in overrides:
            folder = (cwd / Path(overrides[key]).expanduser()).resolve()
            if not any(folder.is_relative_to(root) for root in allowed):
                raise ConfigError(f"{key}={folder} lies outside this folder ({cwd}) and the temporary folder: "
                                  "add allow_outside_outputs=true to write there")


def check(cfg: DictConfig) -> None:
    """Raise `ConfigError` naming the first key that breaks a rule of this module."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key, value in _walk(resolved):
        if not isinstance(value, str):
            continue
        if key.endswith("_target_") and value.split(".", 1)[0] not in ALLOWED_PACKAGES:
            raise ConfigError(f"{key}={value} is not allowed: a _target_ must be a class or function of "
                              f"{', '.join(ALLOWED_PACKAGES)}")
        if _CREDENTIALS.search(value):
            raise _credentials_error(key, value)
