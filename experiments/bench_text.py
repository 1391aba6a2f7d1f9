"""What tracking costs, and how it grows: a benchmark of the text path (not a test).

    python experiments/bench_text.py --data-dir ../shared/data/rakuten --sizes 0 20000 85000

For each size (0: the data as it is; N: its rows replicated to about N, new indices, same labels)
it prints, for the default linearsvc:
- wall seconds of a full tracked `rakuten.train` run (load, split, features, fit, predict,
  evaluate, log, register; feature cache off) against a bare scikit-learn fit + predict of the
  same pipeline on the same split, and their ratio (target: <= 1.3 at 85k rows);
- the peak memory (RSS) of each, measured in its own process;
- `mlflow.pyfunc` predict throughput in batch (target: >= 10,000 rows/s) and single-row latency.
On the data as it is, also the wall time of a 10-model Hydra multirun with the feature cache
against the sum of the 10 bare fits (target: <= 1.5). Replicated rows repeat texts across the
split, so their scores mean nothing; only the costs are read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from rakuten import PROJECT_ROOT, data

MODELS = ["linearsvc", "logreg", "multinomialnb", "complementnb", "sgd", "svc", "knn", "decisiontree",
          "adaboost", "bagging"]


def replicate(source: Path, rows: int, target: Path) -> Path:
    """The products of `source` repeated to about `rows`, under new indices, with their labels."""
    products = pd.read_csv(data.find_file(source, data.X_FILE), index_col=0)
    labels = data.read_labels(data.find_file(source, data.Y_FILE)).loc[products.index]
    copies = max(1, round(rows / len(products)))
    offset = int(products.index.max()) + 1
    big_x = pd.concat([products.set_axis(products.index + k * offset) for k in range(copies)])
    big_y = pd.concat([labels.set_axis(labels.index + k * offset) for k in range(copies)])
    target.mkdir(parents=True, exist_ok=True)
    big_x.to_csv(target / data.X_FILE)
    big_y.to_frame(data.LABEL).to_csv(target / data.Y_FILE)
    return target


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_bare(data_dir: str, model: str) -> dict:
    """Bare scikit-learn: the same pipeline fitted and used on the same split, nothing logged."""
    from rakuten.models import pipeline_from_config
    from rakuten.train import compose_config

    cfg = compose_config(f"data.dir={data_dir}", f"model={model}")
    products, labels = data.load_labelled(cfg.data.dir, cfg.data.max_rows, cfg.seed)
    parts = data.split(products, labels, cfg.data.test_size, cfg.seed)
    pipeline = pipeline_from_config(cfg)
    started = time.perf_counter()
    pipeline.fit(parts.X_train, parts.y_train)
    pipeline.predict(parts.X_test)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(), "rows": len(products)}


def measure_tracked(data_dir: str, store: str) -> dict:
    """A whole tracked run, as `python -m rakuten.train` does it, timed in process."""
    os.environ["MLFLOW_TRACKING_URI"] = store
    from rakuten.train import compose_config, run

    cfg = compose_config(f"data.dir={data_dir}", "cache.enabled=false")
    started = time.perf_counter()
    run(cfg)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


def measure_pyfunc(store: str) -> dict:
    import mlflow

    mlflow.set_tracking_uri(store)
    found = mlflow.search_runs(experiment_names=["rakuten"], order_by=["attributes.start_time DESC"],
                               max_results=1, output_format="list")[0]
    from rakuten import runs

    model = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model")
    rows = runs.test_part(found.info.run_id).X_test[["designation", "description"]]
    model.predict(rows.head(10))  # warm up
    started = time.perf_counter()
    model.predict(rows)
    batch = len(rows) / (time.perf_counter() - started)
    latencies = []
    for i in range(200):
        one = rows.iloc[[i % len(rows)]]
        started = time.perf_counter()
        model.predict(one)
        latencies.append(time.perf_counter() - started)
    return {"batch_rows_per_s": batch, "batch_rows": len(rows),
            "single_row_ms_median": 1000 * statistics.median(latencies),
            "single_row_ms_p95": 1000 * sorted(latencies)[int(0.95 * len(latencies))]}


def in_subprocess(function: str, *args: str) -> dict:
    """Run one measurement in a fresh interpreter, so its peak memory is its own."""
    output = subprocess.run(
        [sys.executable, __file__, "--one", function, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def multirun_vs_bare(data_dir: str, store: str, cache_dir: str) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rakuten.train", "-m", f"model={','.join(MODELS)}", f"data.dir={data_dir}",
         "register=false", f"cache.dir={cache_dir}", f"hydra.sweep.dir={cache_dir}/sweep"],
        cwd=PROJECT_ROOT, env=env, check=True, capture_output=True,
    )
    multirun = time.perf_counter() - started
    bare = {model: in_subprocess("bare", data_dir, model)["seconds"] for model in MODELS}
    return {"multirun_seconds": multirun, "sum_bare_seconds": sum(bare.values()), "bare_seconds": bare}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "rakuten")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 20000, 85000])
    parser.add_argument("--skip-multirun", action="store_true")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, *rest = args.one
        result = {"bare": lambda: measure_bare(*rest), "tracked": lambda: measure_tracked(*rest),
                  "pyfunc": lambda: measure_pyfunc(*rest)}[kind]()
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        print(f"{'rows':>7} {'bare s':>8} {'tracked s':>10} {'ratio':>6} {'bare MB':>8} {'tracked MB':>11} "
              f"{'pyfunc rows/s':>14} {'1-row ms':>9}")
        for size in args.sizes:
            folder = args.data_dir if size == 0 else replicate(args.data_dir, size, work / f"data{size}")
            store = f"sqlite:///{work / f'bench{size}.db'}"
            bare = in_subprocess("bare", str(folder), "linearsvc")
            tracked = in_subprocess("tracked", str(folder), store)
            serving = in_subprocess("pyfunc", store)
            print(f"{bare['rows']:>7} {bare['seconds']:>8.1f} {tracked['seconds']:>10.1f} "
                  f"{tracked['seconds'] / bare['seconds']:>6.2f} {bare['peak_rss_mb']:>8.0f} "
                  f"{tracked['peak_rss_mb']:>11.0f} {serving['batch_rows_per_s']:>14,.0f} "
                  f"{serving['single_row_ms_median']:>9.1f}", flush=True)
        if not args.skip_multirun:
            result = multirun_vs_bare(str(args.data_dir), f"sqlite:///{work / 'multirun.db'}", str(work / "cache"))
            print(f"\n10-model multirun with the feature cache: {result['multirun_seconds']:.1f} s; "
                  f"sum of the 10 bare fits: {result['sum_bare_seconds']:.1f} s; "
                  f"ratio {result['multirun_seconds'] / result['sum_bare_seconds']:.2f}")
            print("bare fit+predict per model (s): "
                  + ", ".join(f"{m} {s:.1f}" for m, s in result["bare_seconds"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
