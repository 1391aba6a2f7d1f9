"""The README's and docs/ pages' examples: Python run as written against a store whose champion is the
default model, commands composed or checked against their --help."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rakuten import PROJECT_ROOT

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md")), PROJECT_ROOT / "experiments" / "README.md"]
BLOCKS = [block for page in PAGES for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]


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


# --- the commands of every page -------------------------------------------------------------------
def command_lines() -> list[str]:
    """Every command of the pages' bash blocks and tables (continuation lines joined, comments off)."""
    texts = [page.read_text() for page in PAGES]
    lines = []
    for text in texts:
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                lines += [part.strip() for part in re.split(r"\s&&\s|\sthen\s", _code(line)) if part.strip()]
        for cell in re.findall(r"`((?:python|mlflow) [^`]+)`", text):
            lines += [part.strip() for part in re.split(r"\s&&\s|\sthen\s", cell) if part.strip()]
    return [line for line in dict.fromkeys(lines) if line.startswith(("python -m rakuten.", "python experiments/"))]


def _code(line: str) -> str:
    """A shell line without its trailing comment (a '#' outside quotes)."""
    quoted = None
    for position, char in enumerate(line):
        if char in "'\"" and quoted in (None, char):
            quoted = None if quoted else char
        elif char == "#" and quoted is None and (position == 0 or line[position - 1] == " "):
            return line[:position]
    return line


COMMANDS = command_lines()
TRAIN = [line for line in COMMANDS if line.startswith("python -m rakuten.train")]
OTHERS = [line for line in COMMANDS if not line.startswith("python -m rakuten.train")]


def test_the_readme_stays_a_map():
    """README.md opens short; the long sections are docs/ pages it links, each of them linked."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    for page in PAGES[1:-1]:
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def test_the_readmes_have_commands():
    assert len(TRAIN) >= 10 and len(OTHERS) >= 10


@pytest.mark.parametrize("line", TRAIN)
def test_every_training_command_composes(line):
    """Its config groups, keys and values exist (a sweep: its first value of each list)."""
    from rakuten.train import compose_config

    overrides = []
    for word in shlex.split(line)[3:]:
        if word == "-m" or word.startswith("hydra"):
            continue
        key, _, value = word.partition("=")
        if "," in value and not value.startswith(("[", "'", '"')):
            value = value.split(",")[0]
        overrides.append(f"{key}={value}")
    compose_config(*overrides)


_HELP: dict[str, str] = {}


def _help(program: list[str]) -> str:
    key = " ".join(program)
    if key not in _HELP:
        result = subprocess.run([sys.executable, *program[1:], "--help"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        _HELP[key] = result.stdout
    return _HELP[key]


@pytest.mark.parametrize("line", OTHERS)
def test_every_other_command_has_the_options_it_is_shown_with(line):
    words = shlex.split(line)
    program = words[:3] if words[1] == "-m" else words[:2]
    if len(words) > len(program) and re.fullmatch(r"[a-z][a-z-]*", words[len(program)]) and \
            re.search(r"\{[a-z,-]*\b" + words[len(program)] + r"\b[a-z,-]*\}", _help(program)):
        program = [*program, words[len(program)]]  # a subcommand: its own options
    key = " ".join(program)
    for option in (w.split("=")[0] for w in words if w.startswith("--")):
        assert option in _help(program), f"{key} has no option {option}"
