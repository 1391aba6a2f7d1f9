"""Where the pretrained networks run and in what precision, as this machine allows: every core (or
what joblib left a worker), a CUDA device when there is one, and on the CPU the precision that runs
the network fastest here, measured.

Which precision is fastest on a CPU is not a rule of its flags: AMX doubles e5's matrix products in
bf16, AVX-512 BF16 alone was slower than fp32 on one Xeon and faster for EfficientNet's convolutions,
MKL's fp32 kernels are not the same on an AMD CPU, fbgemm's int8 ones are. `fastest_precision(kind,
probe, candidates)` times one batch of the network itself in each precision the CPU computes, once
per CPU model, torch version and thread count (a few seconds), and keeps the answer in
`~/.cache/rakuten/precision.json` (`$RAKUTEN_PRECISION_CACHE`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

PRECISION_CACHE_ENV = "RAKUTEN_PRECISION_CACHE"
PAYS = 1.1  # another precision than fp32 is chosen when the probe runs this many times faster in it
_recording: list[dict[str, str]] = []  # the open `recorded_placements`' findings, innermost last


def cores() -> int:
    return len(os.sched_getaffinity(0))


def torch_threads() -> int:
    """Every core, or what joblib left a worker process (it sets OMP_NUM_THREADS there)."""
    return int(os.environ.get("OMP_NUM_THREADS") or cores())


def placement(device: str, precision: str, kind: str, probe, candidates=("fp32", "bf16")) -> tuple[str, str]:
    """`device` and `precision` with `auto` resolved: CUDA when there is one; bf16 on a GPU that
    computes it; on the CPU the fastest of `candidates` for the network `kind` here
    (`fastest_precision`: `probe(precision)` gives the work of one batch of it in that precision)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        else:
            precision = fastest_precision(kind, probe, candidates)
    for found in _recording:
        found[kind] = f"{device} {precision}"
    return device, precision


@contextmanager
def recorded_placements() -> Iterator[dict[str, str]]:
    """Where each network `placement` placed inside the block ran, by network ("e5": "cpu bf16"):
    what `auto` became on this machine, which a run logs beside its `auto` (this process only)."""
    found: dict[str, str] = {}
    _recording.append(found)
    try:
        yield found
    finally:
        _recording.remove(found)


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_precisions(candidates) -> list[str]:
    """Those of `candidates` this CPU computes natively: fp32; bf16 with AVX-512 BF16 or AMX; int8
    with AVX2 (fbgemm's kernels; VNNI where there is one). Emulated ones are slower: not measured."""
    native = {"fp32": True, "bf16": cpu_has_bf16(), "int8": "avx2" in _cpu_flags().split()}
    return [precision for precision in candidates if native[precision]]


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


def told_less() -> str:
    """The libraries told to use less of the CPU than it has: oneDNN (`ONEDNN_MAX_CPU_ISA`, AMX off,
    say), MKL (`MKL_ENABLE_INSTRUCTIONS=AVX2`: its kernels on an AMD CPU). Another machine, in effect."""
    told = ((name, os.environ.get(name)) for name in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"))
    return "".join(f" {name}={value}" for name, value in told if value)


def machine_line() -> str:
    """What a benchmark prints first: the CPU, its flags that matter, the cores it may use, and
    the libraries told to use less of it."""
    return f"CPU: {cpu_name()} [{cpu_features() or 'no AVX-512, no AVX2'}]{told_less()}, {cores()} cores"


def fastest_precision(kind: str, probe, candidates=("fp32", "bf16")) -> str:
    """The precision of `candidates` in which the network `kind` runs fastest on this CPU (fp32
    unless another is `PAYS` times faster): `probe(precision)` (one batch of it) timed in each,
    once, and remembered per CPU model, flags, torch version, thread count and candidates. The
    probe leaves torch's random numbers as they were: a training seeded before it draws the same
    head and dropout masks whether the probe ran now or was remembered."""
    import torch

    native = cpu_precisions(candidates)
    if native == ["fp32"]:
        return "fp32"  # nothing else this CPU computes natively: nothing to measure
    key = (f"{cpu_name()} [{cpu_features()}]{told_less()} torch {torch.__version__} threads {torch_threads()} {kind} "
           f"{'/'.join(native)}")
    path = Path(os.environ.get(PRECISION_CACHE_ENV) or Path.home() / ".cache" / "rakuten" / "precision.json")
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    known = _read_json(path)
    if "chosen" in known.get(digest, {}):
        return known[digest]["chosen"]
    path.parent.mkdir(parents=True, exist_ok=True)
    # one process of this machine measures at a time: two at once would time each other's load, and
    # the second to write would drop what the first found
    with FileLock(path.with_name(f".{path.name}.lock")):
        known = _read_json(path)
        if "chosen" not in known.get(digest, {}):
            with torch.random.fork_rng(devices=[]):  # building and running the probe draws numbers: not the job's
                seconds = _seconds({precision: probe(precision) for precision in native})
            quickest = min(seconds, key=seconds.get)
            chosen = quickest if seconds["fp32"] / seconds[quickest] >= PAYS else "fp32"
            known[digest] = {"machine": key, "seconds": seconds, "chosen": chosen}
            _write_json(path, known)
    return known[digest]["chosen"]


def _seconds(works: dict) -> dict[str, float]:
    """Median seconds of each precision's `work()` (bf16's under autocast), all interleaved (a
    machine busy for a moment slows each alike), after a call of each that chooses kernels."""
    import torch

    torch.set_num_threads(torch_threads())
    seconds: dict[str, list[float]] = {precision: [] for precision in works}
    with torch.inference_mode():
        for repeat in range(6):
            for precision, work in works.items():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    started = time.perf_counter()
                    work()
                    if repeat:
                        seconds[precision].append(time.perf_counter() - started)
    return {precision: sorted(times)[len(times) // 2] for precision, times in seconds.items()}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, value: dict) -> None:
    """Whole or not at all: a process reading while another writes reads a complete file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(temporary, path)
