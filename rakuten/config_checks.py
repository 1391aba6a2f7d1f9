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

from omegaconf import DictConfig, OmegaConf

ALLOWED_PACKAGES = ("sklearn", "imblearn", "rakuten", "lightgbm", "xgboost", "catboost")
_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)


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
            where = ("the tracking server's credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                     if not value.lower().startswith("postgres") else
                     "the database's password in PGPASSWORD or ~/.pgpass")
            raise ConfigError(f"{key} holds a password in a URI: give {where}, never in a config or parameter")
