"""Past one machine, measured: a benchmark (not a test) that prints its figures.

    python experiments/bench_scale.py --rows 10000 200000

Starts a throwaway PostgreSQL and an `mlflow server` on it (127.0.0.1, free ports) and prints:
1. a tracked training job through the server against the same job on a SQLite file (ratio);
2. Optuna trials per minute on one PostgreSQL study with 1 and with 2 worker processes;
3. batch scoring of `rakuten.predict`, pandas engine against Spark local[2], at each `--rows` (the
   shared real products replicated), in fresh processes: the steady-state rows/s of each engine
   (the slope between the two largest sizes) and its start-up seconds.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from rakuten import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT))  # the tests' service helpers (PostgreSQL, mlflow server)
from tests.helpers.services import Postgres, free_port, start_mlflow_server, stop  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict import write_input  # noqa: E402

SHARED = PROJECT_ROOT.parent / "shared" / "data" / "rakuten"


def train(uri: str, folder: Path, *overrides: str, wait: bool = True):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    command = [sys.executable, "-m", "rakuten.train", *overrides, "cache.enabled=false",
               f"hydra.run.dir={folder / str(time.monotonic_ns())}"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    if not wait:
        return process
    _, err = process.communicate()
    if process.returncode:
        raise RuntimeError(err[-2000:])
    return process


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def tracking_overhead(server: str, folder: Path, repeats: int) -> None:
    job = (f"data.dir={SHARED}", "model=linearsvc")
    sqlite = f"sqlite:///{folder / 'bench.db'}"
    train(sqlite, folder, *job)  # creates the store: not timed
    train(server, folder, *job)
    local = min(timed(train, sqlite, folder, *job) for _ in range(repeats))
    remote = min(timed(train, server, folder, *job) for _ in range(repeats))
    print("\n1. tracked LinearSVC job on data=full (4,972 rows), best of", repeats)
    print(f"   SQLite file {local:6.1f}s   mlflow server on PostgreSQL {remote:6.1f}s   ratio {remote / local:.2f}")


def optuna_rate(server: str, postgres: Postgres, folder: Path, trials: int) -> None:
    print(f"\n2. Optuna, model=sgd on data=full, {trials} trials per worker, one PostgreSQL study")
    for workers in (1, 2):
        storage = postgres.create_database(f"optuna_{workers}")
        optuna.create_study(study_name="bench", storage=storage, direction="maximize")
        started = time.perf_counter()
        jobs = [train(server, folder, f"data.dir={SHARED}", "model=sgd", "search=optuna", "search.progress_bar=false",
                      f"search.n_trials={trials}", f"search.storage={storage}", "search.study_name=bench",
                      "register=false", wait=False) for _ in range(workers)]
        for job in jobs:
            if job.wait():
                raise RuntimeError(job.stderr.read()[-2000:])
        seconds = time.perf_counter() - started
        done = len(optuna.load_study(study_name="bench", storage=storage).trials)
        print(f"   {workers} worker(s): {done} trials in {seconds:5.1f}s = {60 * done / seconds:5.1f} trials/min "
              "(job start-up and refit included)")


def scoring_rates(uri: str, folder: Path, sizes: list[int]) -> None:
    """Each engine on each size in a fresh process; the steady-state rate is the slope between the
    two largest sizes (what each extra row costs once the engine is up), start-up the rest."""
    print("\n3. rakuten.predict on the champion (fresh process each): wall seconds per size, then the steady "
          "state from the two largest sizes")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
    seconds = {"pandas": {}, "spark": {}}
    for rows in sizes:
        source = folder / f"X_{rows}.csv"
        write_input(SHARED, rows, source)
        for engine in seconds:
            command = [sys.executable, "-m", "rakuten.predict", str(source), "--output", str(folder / f"y_{engine}.csv"),
                       "--engine", engine, "--spark-master", "local[2]"]
            seconds[engine][rows] = timed(subprocess.run, command, cwd=PROJECT_ROOT, env=env, check=True,
                                          capture_output=True)
        same = (folder / "y_pandas.csv").read_bytes() == (folder / "y_spark.csv").read_bytes()
        print(f"   {rows:>9,} rows: pandas {seconds['pandas'][rows]:6.1f}s  spark local[2] {seconds['spark'][rows]:6.1f}s"
              f"{'' if same else '   OUTPUTS DIFFER'}")
    small, large = sorted(sizes)[-2:]
    rates, startup = {}, {}
    for engine, measured in seconds.items():
        rates[engine] = (large - small) / (measured[large] - measured[small])
        startup[engine] = measured[small] - small / rates[engine]
    print(f"   steady state: pandas {rates['pandas']:,.0f} rows/s, spark {rates['spark']:,.0f} rows/s, "
          f"spark/pandas {rates['spark'] / rates['pandas']:.2f}; start-up: pandas {startup['pandas']:.1f}s, "
          f"spark {startup['spark']:.1f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 200_000, 1_000_000])
    parser.add_argument("--only-scoring", action="store_true",
                        help="section 3 alone, on a SQLite store (a champion trained on data=full first)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from rakuten.features.hardware import machine_line

    print(machine_line(), flush=True)  # every figure below was measured on it
    if args.only_scoring:
        with tempfile.TemporaryDirectory(prefix="rakuten-bench-") as name:
            uri = f"sqlite:///{Path(name) / 'bench.db'}"
            train(uri, Path(name), f"data.dir={SHARED}")
            scoring_rates(uri, Path(name), args.rows)
        return 0
    postgres = Postgres(free_port())
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="rakuten-bench-") as name:
            folder = Path(name)
            port = free_port()
            server = start_mlflow_server(postgres.create_database("mlflow"), folder / "artifacts", port,
                                         folder / "server.log")
            uri = f"http://127.0.0.1:{port}"
            print(f"machine: {os.cpu_count()} cores; server {uri} on PostgreSQL port {postgres.port}")
            tracking_overhead(uri, folder, args.repeats)
            optuna_rate(uri, postgres, folder, args.trials)
            scoring_rates(uri, folder, args.rows)
    finally:
        if server is not None:
            stop(server)
        postgres.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
