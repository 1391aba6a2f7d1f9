"""`rakuten.predict`'s output file: never the input, the user's umask, progress when nobody watches.

Finding 7: `--output` equal to the input replaced the X file (exit 0). Expected: refused in one line,
the input untouched, also through a link. Finding 13: y_test.csv was always 0600 (mkstemp): it takes
the mode the user's umask gives. Finding 9c: scoring a large file off a terminal said nothing for
minutes. Expected: a progress line (rows done, rate, time left) at least every 30 s."""

import pytest
import hashlib
import os
import shutil
import stat
import subprocess
import sys

from tests.helpers.stores import SAMPLE_DIR
from tests.helpers.jobs import job_env

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def predict(store: str, tmp_path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rakuten.predict", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=job_env(store, tmp_path),
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def test_the_output_may_not_be_the_input_even_through_a_link(champion_store, tmp_path):
    x_file = tmp_path / "same.csv.gz"
    shutil.copy(SAMPLE_DIR / "X_train_update.csv.gz", x_file)
    digest = hashlib.sha256(x_file.read_bytes()).hexdigest()
    (tmp_path / "link.csv.gz").symlink_to(x_file)
    for output in ("same.csv.gz", "link.csv.gz"):
        done = predict(champion_store, tmp_path, "same.csv.gz", "--output", output)
        assert done.returncode == 2
        assert done.stderr.strip() == f"error: --output {output} is the input file same.csv.gz: name another file to write"
    assert hashlib.sha256(x_file.read_bytes()).hexdigest() == digest


def test_y_test_takes_the_mode_of_the_users_umask(champion_store, tmp_path):
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        output = tmp_path / f"y_{umask:o}.csv"
        done = predict(champion_store, tmp_path, str(SAMPLE_DIR / "X_train_update.csv.gz"), "--output", str(output),
                       umask=umask)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(output.stat().st_mode) == mode


def test_off_a_terminal_scoring_says_its_progress(champion_store, tmp_path):
    import gzip

    rows = gzip.open(SAMPLE_DIR / "X_train_update.csv.gz", "rt", encoding="utf-8").read().splitlines(keepends=True)
    big = tmp_path / "big.csv"
    with open(big, "w", encoding="utf-8") as out:  # the sample 60 times, new indexes
        out.write(rows[0])
        for copy in range(60):
            for number, line in enumerate(rows[1:]):
                out.write(f"{copy * 10_000 + number}{line[line.index(','):]}")
    done = subprocess.run([sys.executable, "-m", "rakuten.predict", str(big), "--output", str(tmp_path / "y.csv")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**job_env(champion_store, tmp_path), "RAKUTEN_PROGRESS_SECONDS": "0.5"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("predicting")]
    assert lines and lines[0].startswith("predicting on 120,000 rows: about "), done.stdout[-2000:]
    assert any("/120,000 rows in " in line and line.endswith(" left") for line in lines[1:]), lines
