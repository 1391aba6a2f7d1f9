"""`rakuten <command>`: one command over the project's commands."""

import pytest
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rakuten.command import COMMANDS

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def rakuten(*args: str, env=None) -> subprocess.CompletedProcess:
    script = shutil.which("rakuten", path=str(Path(sys.executable).parent)) or "rakuten"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=300, cwd="/tmp",
                          env={**os.environ, **(env or {})})


def test_help_lists_every_command_and_each_has_its_own_help():
    said = rakuten("--help")
    assert said.returncode == 0
    assert [line.split()[0] for line in said.stdout.splitlines() if line.startswith("  ")] == list(COMMANDS)
    for name in ("leaderboard", "predict", "team-server"):
        own = rakuten(name, "--help")
        assert own.returncode == 0 and own.stdout.startswith("usage: python -m rakuten."), own.stderr


def test_an_unknown_command_and_a_bad_job_are_user_errors(tmp_path):
    unknown = rakuten("nope")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no command 'nope'")
    bad = rakuten("train", "data.max_rows=3", f"hydra.run.dir={tmp_path}",
                  env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: data.max_rows=3 is below the number of classes (27): raise it, or null "
                                  "for every row")
