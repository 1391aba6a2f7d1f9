"""Parallel sweeps on a fresh SQLite store, again and again: how many runs finish?

    python experiments/sweep_reliability.py --repetitions 10

Each repetition makes a new store in a temporary folder and runs
`python -m rakuten.train -m model=linearsvc,sgd,complementnb,multinomialnb hydra/launcher=joblib
hydra.launcher.n_jobs=2` on it, then counts the FINISHED runs. Prints one line per repetition and
the total; exits 1 if any run was lost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("linearsvc", "sgd", "complementnb", "multinomialnb")


def one_sweep(folder: Path, max_rows: int) -> tuple[int, int, float]:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "rakuten.train", "-m", f"model={','.join(MODELS)}", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={folder / 'sweep'}", f"data.max_rows={max_rows}",
         "register=false", "cache.enabled=false"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return sum(r.info.status == "FINISHED" for r in runs), len(MODELS), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--max-rows", type=int, default=600)
    args = parser.parse_args()
    finished_total = expected_total = 0
    for repetition in range(1, args.repetitions + 1):
        with tempfile.TemporaryDirectory(prefix="rakuten-sweep-") as folder:
            finished, expected, seconds = one_sweep(Path(folder), args.max_rows)
        finished_total += finished
        expected_total += expected
        print(f"repetition {repetition:2d}: {finished} of {expected} runs FINISHED ({seconds:.1f}s)", flush=True)
    print(f"total: {finished_total} of {expected_total} runs FINISHED in {args.repetitions} sweeps")
    return 0 if finished_total == expected_total else 1


if __name__ == "__main__":
    raise SystemExit(main())
