"""EfficientNet-Lite feature extraction: the plain torch path (fp32, as before) against the project's
path (batch norms folded, channels-last, the next batch decoded while one runs) in fp32 and in the
precision `auto` chooses, held to torch and compiled by OpenVINO (the default where it is installed),
in one run on the same pictures; prints pictures/s, the ratio, the work per picture and the share of
fp32 peak.

    python experiments/bench_pictures.py --data-dir ../shared/data/rakuten --pictures 128 --variant lite0
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rakuten import data_pictures  # noqa: E402
from rakuten.features.openvino_engine import ENGINE_ENV  # noqa: E402
from rakuten.features.efficientnet_network import network_input  # noqa: E402
from rakuten.features.pretrained import EfficientNetFeatures  # noqa: E402

GFLOP = {"lite0": 0.78, "lite2": 1.7}  # per picture (2 x multiply-adds), the published figures
PEAK_GFLOPS_PER_CORE = 147  # fp32, AVX-512 FMA at this machine's clock


def plain(extractor: EfficientNetFeatures, paths: list[str]) -> np.ndarray:
    """The path before: fp32, contiguous, decode then infer, batch after batch."""
    import torch

    network, rows = extractor._network(), []
    with torch.inference_mode():
        for start in range(0, len(paths), extractor.batch_size):
            batch = np.stack([extractor.picture(p) for p in paths[start:start + extractor.batch_size]])
            rows.append(network.extract_features(network_input(batch)).mean((2, 3)).numpy())
    return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "rakuten"))
    parser.add_argument("--pictures", type=int, default=128)
    parser.add_argument("--variant", default="lite0", choices=sorted(GFLOP))
    args = parser.parse_args()
    from rakuten.features.hardware import machine_line

    print(machine_line(), flush=True)  # every figure below was measured on it
    frame, _, _ = data_pictures.load_images(args.data_dir, max_rows=max(args.pictures, 27), seed=0)
    paths = frame["image_path"].head(args.pictures).tolist()
    cores = len(os.sched_getaffinity(0))
    extractor = EfficientNetFeatures(args.variant).fit(None)
    in_fp32 = EfficientNetFeatures(args.variant, device="cpu", precision="fp32").fit(None)
    in_torch = EfficientNetFeatures(args.variant).fit(None)
    short = paths[:8]
    runs = {"torch fp32 (before)": (None, lambda p: plain(extractor, p)),
            "project in torch fp32": ("torch", in_fp32._compute),
            f"project in torch {in_torch.placement()[1]}": ("torch", in_torch._compute),
            f"project ({extractor.computed_in()})": ("auto", extractor._compute)}
    timings = {}
    for name, (engine, run) in runs.items():
        os.environ[ENGINE_ENV] = engine or "torch"
        run(short)  # builds (and compiles) its network
        started = time.perf_counter()
        timings[name] = (run(paths), time.perf_counter() - started)
    os.environ.pop(ENGINE_ENV)
    (before, t0), *_, (after, t1) = timings.values()
    cosine = ((before * after).sum(1) / np.linalg.norm(before, axis=1) / np.linalg.norm(after, axis=1)).min()
    peak = PEAK_GFLOPS_PER_CORE * cores
    for name, (_, seconds) in timings.items():
        rate = len(paths) / seconds
        print(f"{name:28} {rate:7.1f} pictures/s  {rate * GFLOP[args.variant]:6.1f} GFLOP/s  "
              f"{100 * rate * GFLOP[args.variant] / peak:5.1f}% of fp32 peak ({cores} cores)")
    print(f"ratio {t0 / t1:.2f}x on {len(paths)} pictures, EfficientNet-{args.variant}; features: cosine >= {cosine:.4f}")


if __name__ == "__main__":
    main()
