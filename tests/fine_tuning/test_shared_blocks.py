"""A picture blend's frozen model and fine-tuned network run their common first blocks once: on the
sample's pictures, each part's answer computed together is the one it gives alone on the same pixels."""

import copy
import pickle

import numpy as np
import pytest

from tests.helpers.stores import SAMPLE_DIR, requires_extra

pytestmark = pytest.mark.slow  # fine-tunes a network: CI's tier

requires_extra("efficientnet_lite_pytorch", "pretrained")

from rakuten import data_pictures  # noqa: E402
from rakuten.fine_tuning import Blend, FineTunedEfficientNet  # noqa: E402
from rakuten.fine_tuning.shared_blocks import probabilities_together, shared_block_count  # noqa: E402


@pytest.fixture(scope="module")
def parts():
    """A frozen Lite0 model and a Lite0 network whose last block learned, both at 128 px in fp32, fitted on the sample."""
    from sklearn.linear_model import LogisticRegression

    from rakuten.features.pretrained import EfficientNetFeatures
    from rakuten.models import picture_pipeline

    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    rows = frame[["image_path"]]
    frozen = picture_pipeline(EfficientNetFeatures("lite0", image_size=128, precision="fp32"),
                              LogisticRegression(C=0.005, max_iter=500)).fit(rows, labels)
    network = FineTunedEfficientNet("lite0", image_size=128, epochs=1, trainable_blocks=1, batch_size=16,
                                    precision="fp32", validation_size=0.0).fit(rows, labels)
    return frozen, network, rows.head(6)


def test_the_first_blocks_the_network_kept_frozen_are_shared_and_each_part_answers_as_it_does_alone(parts):
    import torch

    from rakuten.features.efficientnet_network import network_input

    frozen, network, rows = parts
    assert shared_block_count(frozen[0], network) == 15  # Lite0's 16 blocks, the last one trained
    by_frozen, by_network = probabilities_together(frozen, network, rows)
    np.testing.assert_allclose(by_frozen, frozen.predict_proba(rows), atol=1e-5)  # the same pixels, weights and blocks
    pixels = network_input(np.stack([frozen[0].picture(path) for path in rows["image_path"]])).contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode():
        alone = network._network()
        logits = torch.cat([alone(pixels), alone(pixels.flip(3))]).float()
    mirrored = torch.softmax(logits, -1).reshape(2, len(rows), -1).mean(0).numpy()
    np.testing.assert_allclose(by_network, mirrored, atol=1e-3)  # its own frozen blocks are kept in fp16


def test_nothing_is_shared_where_the_network_trained_those_blocks_reads_another_size_or_runs_in_another_precision(parts):
    frozen, network, rows = parts
    tampered = copy.deepcopy(network)
    name = "backbone._blocks.0._depthwise_conv.weight"
    tampered.trained_[name] = tampered.trained_[name] * np.float16(1.01)
    resized = copy.deepcopy(network)
    resized.image_size = 160
    in_bf16 = copy.deepcopy(network)
    in_bf16.precision, in_bf16._built = "bf16", None
    assert shared_block_count(frozen[0], tampered) == 0
    assert shared_block_count(frozen[0], resized) == 0
    assert probabilities_together(frozen, in_bf16, rows) is None


def test_a_blend_that_shares_nothing_averages_its_parts_answers_and_a_loaded_blend_counts_again(parts):
    frozen, network, rows = parts
    blend = Blend(frozen, network, weight=0.3)
    blend.classes_, blend.weight_, blend.linear_ = np.union1d(frozen.classes_, network.classes_), 0.3, frozen
    blend.encoder_ = copy.deepcopy(network)
    blend.encoder_.trainable_blocks = -1  # every block trained: nothing to share
    apart = 0.3 * frozen.predict_proba(rows) + 0.7 * blend.encoder_.predict_proba(rows)
    np.testing.assert_allclose(blend.predict_proba(rows), apart, atol=1e-6)

    blend.encoder_ = network
    together = blend.predict_proba(rows)
    assert network._shared[1] == 15
    loaded = pickle.loads(pickle.dumps(blend))
    assert not hasattr(loaded.encoder_, "_shared")
    np.testing.assert_allclose(loaded.predict_proba(rows), together, atol=1e-3)  # its trained block now from fp16
    assert loaded.encoder_._shared[1] == 15


def test_on_the_cpu_the_pass_runs_compiled_by_openvino_and_answers_as_it_does_in_torch(parts, monkeypatch):
    from rakuten.features import openvino_engine

    frozen, network, rows = parts
    requires_extra("openvino", "pretrained")
    answers, engines = {}, {}
    for engine in ("torch", "auto"):
        monkeypatch.setenv(openvino_engine.ENGINE_ENV, engine)
        loaded = pickle.loads(pickle.dumps(network))
        answers[engine] = probabilities_together(frozen, loaded, rows)
        engines[engine] = type(loaded._shared[2]).__name__
    assert engines == {"torch": "BlendPass", "auto": "CompiledNetwork"}
    for by_torch, compiled in zip(answers["torch"], answers["auto"]):
        np.testing.assert_allclose(compiled, by_torch, atol=1e-4)  # both fp32: the network's precision
    by_frozen, by_network = probabilities_together(frozen, loaded, rows.head(2))  # not the batch it was traced on
    np.testing.assert_allclose(by_network, answers["auto"][1][:2], atol=1e-5)
    np.testing.assert_allclose(by_frozen, answers["auto"][0][:2], atol=1e-5)


def test_a_network_fitted_again_builds_its_pass_again(parts):
    frozen, network, rows = parts
    refitted = copy.deepcopy(network)
    probabilities_together(frozen, refitted, rows)
    before = refitted._shared[2]
    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    refitted.set_params(random_state=1).fit(frame[["image_path"]], labels)
    assert not hasattr(refitted, "_shared")
    _, by_network = probabilities_together(frozen, refitted, rows)
    assert refitted._shared[2] is not before
    _, by_a_loaded_copy = probabilities_together(frozen, pickle.loads(pickle.dumps(refitted)), rows)
    np.testing.assert_allclose(by_network, by_a_loaded_copy, atol=1e-3)  # the new weights (kept in fp16 once pickled)
