"""How fast does `python -m rakuten.serve` answer a 2-row request? A benchmark (not a test).

    python experiments/bench_serve.py --model-uri models:/rakuten-image@champion --requests 60

Serves the model on 127.0.0.1, sends one warm-up request and then `--requests` POSTs of two products
of the shared data each (texts as `designation` and `description`, pictures as `image_b64`: the rows
the model's signature asks for), and prints the CPU, the median and the p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

from rakuten import PROJECT_ROOT, data, data_pictures


def request_rows(data_dir: Path, columns: list[str], count: int) -> list[dict]:
    """`count` products of the shared data that have a picture, as the records a client sends: the
    model's input `columns` among designation, description and image_b64."""
    pictures, _, _ = data_pictures.load_images(data_dir)
    products, _ = data.load_labelled(data_dir)
    frame = products[["designation", "description"]].join(pictures["image_path"], how="inner")
    records = []
    for _, row in frame.head(count).iterrows():
        record = {"designation": str(row["designation"]), "description": "" if pd.isna(row["description"])
                  else str(row["description"]), "image_b64": base64.b64encode(Path(row["image_path"]).read_bytes()).decode()}
        records.append({name: record[name] for name in columns})
    return records


def rest_latencies(store: str, model_uri: str, bodies: list[bytes]) -> list[float]:
    """Milliseconds of POSTs of `bodies` to `python -m rakuten.serve` serving `model_uri`, after one
    warm-up request with the first; the server stopped after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "rakuten.serve", "--model-uri", model_uri,
                               "--port", str(port), "--tracking-uri", store], cwd=PROJECT_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the model server did not answer /ping within 120 s")
                time.sleep(0.5)
        latencies = []
        for body in [bodies[0], *bodies]:
            request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
            started = time.perf_counter()
            urllib.request.urlopen(request, timeout=60).read()
            latencies.append(1000 * (time.perf_counter() - started))
        return latencies[1:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def summary(latencies: list[float]) -> str:
    return (f"{len(latencies)} requests of 2 rows: median {statistics.median(latencies):.1f} ms, "
            f"p95 {sorted(latencies)[int(0.95 * len(latencies))]:.1f} ms")


def main() -> int:
    import mlflow

    from rakuten.features.hardware import machine_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "rakuten")
    parser.add_argument("--model-uri", default="models:/rakuten-image@champion")
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    store = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    columns = [spec.name for spec in mlflow.models.get_model_info(args.model_uri).signature.inputs.inputs]
    sent = [c for c in ("designation", "description", "image_b64") if c in columns or
            (c == "image_b64" and "image_path" in columns)]
    records = request_rows(args.data_dir, sent, 2 * args.requests)
    bodies = [json.dumps({"dataframe_records": records[k:k + 2]}).encode() for k in range(0, len(records), 2)]
    print(machine_line())
    print(f"{args.model_uri} ({', '.join(sent)}), python -m rakuten.serve: {summary(rest_latencies(store, args.model_uri, bodies))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
