"""A fitted picture network compiled by OpenVINO answers as torch does, for any batch size, in the
precision asked or measured; the engine can be held to torch, and a wrong engine is named."""

import json

import numpy as np
import pytest

from tests.helpers.stores import requires_extra

requires_extra("openvino", "pretrained")

import torch  # noqa: E402

from rakuten.features import hardware, openvino_engine  # noqa: E402


def small_network():
    """Convolutions, a depthwise one, ReLU6, pooling and a softmax head: what EfficientNet is made of."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU6(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5), torch.nn.Softmax(-1)).eval()


def pictures(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_compiled_network_answers_as_torch_for_any_batch_size():
    network = small_network()
    compiled = openvino_engine.CompiledNetwork(network, pictures(4, 0), "fp32", "a test network")
    assert compiled.precision == "fp32"
    for count in (4, 1, 7):  # traced on 4
        batch = pictures(count, count)
        (answer,) = compiled(batch.numpy())
        with torch.inference_mode():
            expected = network(batch).numpy()
        assert answer.shape == (count, 5) and answer.dtype == np.float32
        np.testing.assert_allclose(answer, expected, atol=1e-5)


def test_auto_precision_is_measured_once_per_machine_and_kept(tmp_path, monkeypatch):
    cache = tmp_path / "precision.json"
    monkeypatch.setenv(hardware.PRECISION_CACHE_ENV, str(cache))
    compiled = openvino_engine.CompiledNetwork(small_network(), pictures(2, 0), "auto", "a test network")
    if hardware.cpu_precisions(("fp32", "bf16")) == ["fp32"]:
        assert compiled.precision == "fp32" and not cache.exists()
        return
    (entry,) = json.loads(cache.read_text()).values()
    assert "a test network openvino" in entry["machine"] and sorted(entry["seconds"]) == ["bf16", "fp32"]
    assert compiled.precision == entry["chosen"]


def test_the_engine_compiles_on_the_cpu_unless_held_to_torch_and_names_a_wrong_one(monkeypatch):
    monkeypatch.delenv(openvino_engine.ENGINE_ENV, raising=False)
    assert openvino_engine.compiles("cpu") and not openvino_engine.compiles("cuda")
    monkeypatch.setenv(openvino_engine.ENGINE_ENV, "torch")
    assert not openvino_engine.compiles("cpu")
    monkeypatch.setenv(openvino_engine.ENGINE_ENV, "tensorrt")
    with pytest.raises(ValueError, match="RAKUTEN_PICTURE_ENGINE: auto or torch, got 'tensorrt'"):
        openvino_engine.compiles("cpu")


def test_a_function_converted_under_the_callers_autocast_is_traced_as_written():
    network = small_network().requires_grad_(False)  # a function's weights are constants of the graph
    compiled = openvino_engine.CompiledNetwork(lambda batch: network(batch) * 2, pictures(3, 0), "fp32",
                                               "a test network")
    batch = pictures(3, 1)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # as a caller's batch loop runs
        (answer,) = compiled(batch.numpy())  # converted here, at the first call
    with torch.inference_mode():
        np.testing.assert_allclose(answer, network(batch).numpy() * 2, atol=1e-5)
