"""Does `rakuten.predict` keep memory flat as the input grows? A benchmark (not a test).

    python experiments/bench_predict.py --model-uri models:/rakuten-text@champion --rows 20000 200000

Writes X-format files of the shared products repeated to each size, runs `python -m rakuten.predict`
on each in a fresh process, and prints wall seconds, rows per second and peak memory (RSS).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from rakuten import PROJECT_ROOT, data


def write_input(source: Path, rows: int, path: Path) -> None:
    products = pd.read_csv(data.find_file(source, data.X_FILE), index_col=0)
    copies = -(-rows // len(products))
    offset = int(products.index.max()) + 1
    big = pd.concat([products.set_axis(products.index + k * offset) for k in range(copies)]).iloc[:rows]
    big.to_csv(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "rakuten")
    parser.add_argument("--model-uri", default="models:/rakuten-text@champion")
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--chunk-size", type=int, default=10_000)
    args = parser.parse_args()
    from rakuten.features.hardware import machine_line

    print(machine_line(), flush=True)  # every figure below was measured on it
    print(f"{'rows':>9} {'seconds':>8} {'rows/s':>8} {'peak MB':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            source = Path(folder) / f"X_{rows}.csv"
            write_input(args.data_dir, rows, source)
            started = time.perf_counter()
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "rakuten.predict", str(source),
                 "--output", str(Path(folder) / "y.csv"), "--model-uri", args.model_uri,
                 "--chunk-size", str(args.chunk_size)],
                cwd=PROJECT_ROOT, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"},
            )
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
            print(f"{rows:>9} {seconds:>8.1f} {rows / seconds:>8,.0f} {peak_mb:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
