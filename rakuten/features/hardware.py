"""Where the pretrained networks run and in what precision, as this machine allows: every core (or
what joblib left a worker), a CUDA device when there is one, bf16 where it pays on this CPU, measured.

Whether bf16 pays on a CPU is not a rule of its flags: AMX doubles e5's matrix products, AVX-512 BF16
alone was slower than fp32 on one Xeon and faster for EfficientNet's convolutions. `bf16_pays(kind)`
times one batch of the network itself in both precisions once per CPU model, torch version and
thread count (a second or two), and keeps the answer in
`~/.cache/rakuten/precision.json` (`$RAKUTEN_PRECISION_CACHE`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

PRECISION_CACHE_ENV = "RAKUTEN_PRECISION_CACHE"
PAYS = 1.1  # bf16 is chosen when the probe runs this many times faster than in fp32


def cores() -> int:
    return len(os.sched_getaffinity(0))


def torch_threads() -> int:
    """Every core, or what joblib left a worker process (it sets OMP_NUM_THREADS there)."""
    return int(os.environ.get("OMP_NUM_THREADS") or cores())


def placement(device: str, precision: str, kind: str, probe) -> tuple[str, str]:
    """`device` and `precision` with `auto` resolved: CUDA when there is one; bf16 on a GPU that
    computes it, on the CPU where it pays for the network `kind` here (`bf16_pays`: `probe()` gives
    the work of one batch of it, timed in both precisions)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if device == "cuda" else bf16_pays(kind, probe)
        precision = "bf16" if native else "fp32"
    return device, precision


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); whether that pays is measured."""
    return bool({"avx512_bf16", "amx_bf16"} & set(_cpu_flags().split()))


def cpu_name() -> str:
    """The CPU's model name (`lscpu`'s), what every speed figure names."""
    for line in _cpu_flags().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_features() -> str:
    """The flags that decide a network's speed here: AMX, AVX-512 (BF16, VNNI), AVX2."""
    flags = set(_cpu_flags().split())
    return " ".join(f for f in ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2") if f in flags)


def machine_line() -> str:
    """What a benchmark prints first: the CPU, its flags that matter, the cores it may use."""
    return f"CPU: {cpu_name()} [{cpu_features() or 'no AVX-512, no AVX2'}], {cores()} cores"


def bf16_pays(kind: str, probe) -> bool:
    """Whether the network `kind` runs faster in bf16 than in fp32 on this CPU: `probe()` (one batch of
    it) timed in both, once, and remembered per CPU model, flags, torch version and thread count."""
    import torch

    if not cpu_has_bf16():
        return False  # bf16 without AVX-512 BF16 or AMX is emulated: slower, nothing to measure
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")  # oneDNN told to use less of the CPU (AMX off, say)
    key = (f"{cpu_name()} [{cpu_features()}]{f' ONEDNN_MAX_CPU_ISA={isa}' if isa else ''} torch {torch.__version__} "
           f"threads {torch_threads()} {kind}")
    path = Path(os.environ.get(PRECISION_CACHE_ENV) or Path.home() / ".cache" / "rakuten" / "precision.json")
    known = _read_json(path)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    if digest not in known:
        fp32, bf16 = _seconds(probe())
        known[digest] = {"machine": key, "fp32_s": fp32, "bf16_s": bf16, "bf16_pays": fp32 / bf16 >= PAYS}
        _write_json(path, known)
    return bool(known[digest]["bf16_pays"])


def _seconds(work) -> tuple[float, float]:
    """Median seconds of `work()` in fp32 and under bf16 autocast, the two interleaved (a machine busy
    for a moment slows both alike), after a call of each that chooses kernels."""
    import torch

    torch.set_num_threads(torch_threads())
    seconds: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for repeat in range(6):
            for bf16 in (False, True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    started = time.perf_counter()
                    work()
                    if repeat:
                        seconds[bf16].append(time.perf_counter() - started)
    return tuple(sorted(times)[len(times) // 2] for times in (seconds[False], seconds[True]))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, value: dict) -> None:
    """Whole or not at all: two processes measuring at once each write a complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(temporary, path)
