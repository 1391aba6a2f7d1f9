"""Defaults the commands share with the training config, read from `conf/config.yaml`: one home each;
and the environment of the MLflow servers the commands start."""

from __future__ import annotations

import yaml

from rakuten import PROJECT_ROOT

_CONFIG = yaml.safe_load((PROJECT_ROOT / "conf" / "config.yaml").read_text())

EXPERIMENT: str = _CONFIG["mlflow"]["experiment"]  # where jobs log their runs
EVALUATIONS: str = f"{EXPERIMENT}-evaluations"  # where `rakuten.evaluate` logs its runs
FAST_BUDGET_MS: float = float(_CONFIG["fast_budget_ms"])  # alias `fast`: ms a row in a batch


def server_environment(environment: dict[str, str]) -> dict[str, str]:
    """The environment of an `mlflow server` the zoo starts (the team server, the UI): without MLflow's job
    runner (its GenAI jobs, which the zoo does not use: eight more processes, 1.1 GB and 17 s of CPU at each
    start) unless `MLFLOW_SERVER_ENABLE_JOB_EXECUTION` asks for it."""
    switch = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
    return {**environment, switch: environment.get(switch, "false")}
