"""Where the pretrained networks run and in what precision, as this machine allows: every core (or
what joblib left a worker), a CUDA device when there is one, bf16 where it pays."""

from __future__ import annotations

import os
from pathlib import Path


def cores() -> int:
    return len(os.sched_getaffinity(0))


def torch_threads() -> int:
    """Every core, or what joblib left a worker process (it sets OMP_NUM_THREADS there)."""
    return int(os.environ.get("OMP_NUM_THREADS") or cores())


def placement(device: str, precision: str, cpu_bf16_pays: bool) -> tuple[str, str]:
    """`device` and `precision` with `auto` resolved: CUDA when there is one; bf16 on a GPU that
    computes it, on the CPU where `cpu_bf16_pays` (measured per network: see its caller)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_bf16_pays
        precision = "bf16" if native else "fp32"
    return device, precision


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): EfficientNet's convolutions then
    run 1.7x (AVX-512 BF16) to 2x (AMX) faster than in fp32."""
    return " avx512_bf16" in _cpu_flags() or " amx_bf16" in _cpu_flags()


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles for bf16: e5's matrix products are then 2x faster in bf16; with
    AVX-512 BF16 alone they are 1.6x slower than in fp32 (measured), so e5 stays in fp32 there."""
    return " amx_bf16" in _cpu_flags()
