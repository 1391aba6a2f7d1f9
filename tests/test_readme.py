"""The README's Python examples run as written, against a store whose champion is the default model."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rakuten import PROJECT_ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_python_example_runs_as_written(champion_store, number):
    folder = Path(champion_store[len("sqlite:///"):]).parent  # the examples use ./mlflow.db
    last_value = "\n".join(BLOCKS[number].rstrip().splitlines()[:-1] + [
        "print(repr(" + BLOCKS[number].rstrip().splitlines()[-1].split("#")[0].strip() + "))"])
    result = subprocess.run([sys.executable, "-c", last_value], cwd=folder, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the example's last line printed nothing"
