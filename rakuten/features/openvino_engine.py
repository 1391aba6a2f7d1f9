"""A fitted picture network's inference compiled by OpenVINO for the CPU, where it is installed (the
`pretrained` extra brings it): the frozen EfficientNet features, a fine-tuned network, a picture blend's
pass. Torch's eager mode runs EfficientNet's hundreds of small operations one by one; OpenVINO fuses
them into a few kernels. The picture blend's pass over 2 pictures and their mirrors took 46 ms
instead of torch's 118 (bf16) with AMX left out, 20 ms instead of 76 with AMX (2 cores of an Intel
Xeon; docs/serving.md). Training stays in torch: only a fitted network is compiled, once per loaded
model (a few seconds), never pickled.

`RAKUTEN_PICTURE_ENGINE=torch` keeps every picture network in torch (to compare, or where OpenVINO
misbehaves). The network's `precision=auto` becomes the one this CPU runs the compiled graph fastest
in, measured once per machine as `rakuten.features.hardware.fastest_precision` does for torch:
OpenVINO's bf16 pays with AMX, not with AVX-512 BF16 alone.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading

import numpy as np

from rakuten.features.hardware import fastest_precision, torch_threads

ENGINE_ENV = "RAKUTEN_PICTURE_ENGINE"
ENGINES = ("auto", "torch")


def compiles(device: str) -> bool:
    """Whether a picture network on `device` runs compiled: on the CPU, OpenVINO installed, and the
    engine not held to torch."""
    engine = os.environ.get(ENGINE_ENV, "auto")
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}: auto or torch, got {engine!r}")
    return device == "cpu" and engine == "auto" and importlib.util.find_spec("openvino") is not None


class CompiledNetwork:
    """`network` (a torch module, or a function of torch tensors whose weights need no gradient; its
    input a float32 batch, its outputs tensors) converted by tracing it on `example` (any batch size
    runs after) and compiled for this CPU in `precision` (fp32, bf16, or auto: the faster here,
    measured once per machine under `kind`'s name). `precision` is known at once; the conversion (a
    few seconds) waits for the first call, or for the measurement. Called with a float32 array, it
    gives the outputs as float32 arrays."""

    def __init__(self, network, example, precision: str, kind: str):
        import openvino

        self._network, self._example = network, example
        self._lock = threading.Lock()  # one infer request: callers take turns
        self.precision = precision if precision != "auto" else fastest_precision(
            f"{kind} openvino {openvino.__version__}", self._probe)

    @functools.cached_property
    def _model(self):
        import openvino
        import torch

        network = self._network if isinstance(self._network, torch.nn.Module) else _traced(self._network)
        # traced as written: a caller's autocast would put its casts into the graph
        with torch.autocast("cpu", enabled=False):
            return openvino.convert_model(network.eval(), example_input=self._example)

    @functools.cached_property
    def _compiled(self):
        return self._compiled_in(self.precision)

    def _compiled_in(self, precision: str):
        import openvino

        return openvino.Core().compile_model(self._model, "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch_threads()})

    def _probe(self, precision: str):
        """One call in `precision`: what `fastest_precision` times."""
        compiled, example = self._compiled_in(precision), self._example.numpy()
        return lambda: compiled(example)

    def __call__(self, inputs: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            results = self._compiled(np.ascontiguousarray(inputs, dtype=np.float32))
            return [np.asarray(results[index], dtype=np.float32) for index in range(len(results))]


def _traced(function):
    import torch

    class Traced(torch.nn.Module):
        def forward(self, inputs):
            return function(inputs)

    return Traced()
