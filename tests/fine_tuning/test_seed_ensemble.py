"""Two fine-tuned EfficientNet-Lite0 networks from two seeds, averaged, on the bundled sample's real
pictures (its four most common classes), tiny: their last block learning, at 128 px."""

import pickle

import numpy as np
import pytest

from tests.helpers.stores import SAMPLE_DIR, requires_extra

pytestmark = pytest.mark.slow  # trains convolutional networks: CI's tier

requires_extra("efficientnet_lite_pytorch", "pretrained")

from rakuten import data_pictures  # noqa: E402
from rakuten.fine_tuning import Blend, FineTunedEfficientNet  # noqa: E402
from rakuten.fine_tuning.seed_ensemble import SeedEnsemble  # noqa: E402


@pytest.fixture(scope="module")
def pictures():
    """(rows, labels, validation rows, validation labels) of the sample's pictures of its four most common classes."""
    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    kept = labels.isin(labels.value_counts().index[:4])
    rows, labels = frame.loc[kept, ["image_path"]], labels[kept].to_numpy()
    return rows.iloc[::2], labels[::2], rows.iloc[1::2], labels[1::2]


def tiny(**settings) -> FineTunedEfficientNet:
    return FineTunedEfficientNet(**{"variant": "lite0", "image_size": 128, "epochs": 1, "trainable_blocks": 1,
                                    "batch_size": 16, "learning_rate": 1e-3, "precision": "fp32",
                                    "random_state": 42, **settings})


@pytest.fixture(scope="module")
def ensemble(pictures, tmp_path_factory):
    """Two networks fitted, their epochs logged as `logged` (name, step) pairs, checkpoints in `folder`."""
    rows, labels, val_rows, val_labels = pictures
    folder, logged = tmp_path_factory.mktemp("checkpoints"), []
    network = tiny(checkpoint_dir=str(folder), on_epoch=lambda metrics, step: logged.extend((n, step) for n in metrics))
    fitted = SeedEnsemble(network, count=2).fit(rows, labels, validation=(val_rows, val_labels))
    return fitted, logged, folder


def test_each_network_trains_from_its_own_seed_logs_its_own_curves_and_leaves_no_checkpoint(ensemble, pictures):
    fitted, logged, folder = ensemble
    first, second = fitted.networks_
    assert (first.random_state, second.random_state) == (42, 43)
    head = "head.1.weight"
    assert not np.array_equal(first.trained_[head], second.trained_[head])  # its own initial head and batches
    assert ("val_f1_weighted", 1) in logged and ("network2_val_f1_weighted", 1) in logged
    assert not any(name.startswith("network1_") for name, _ in logged)  # the first logs as a network alone does
    assert list(folder.iterdir()) == []  # all fitted: nothing to resume
    assert not hasattr(first, "checkpoint_") and not hasattr(second, "keep_checkpoint_")
    rows = pictures[2].head(5)
    np.testing.assert_allclose(fitted.predict_proba(rows),
                               (first.predict_proba(rows) + second.predict_proba(rows)) / 2, atol=1e-6)


def test_a_job_stopped_while_the_second_network_trains_resumes_with_the_first_as_it_ended(pictures, tmp_path):
    rows, labels, val_rows, val_labels = pictures
    steps = []

    def stop_in_the_second(metrics, step):
        steps.append((next(iter(metrics)), step))
        if "network2_train_loss" in metrics:
            raise KeyboardInterrupt  # Ctrl-C after the second network's epoch 1: its checkpoint is written

    network = tiny(epochs=2, patience=5, checkpoint_dir=str(tmp_path), on_epoch=stop_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        SeedEnsemble(network, count=2).fit(rows, labels, validation=(val_rows, val_labels))
    assert steps == [("train_loss", 1), ("train_loss", 2), ("network2_train_loss", 1)]
    assert len(list(tmp_path.glob("*.pt"))) == 2  # the first network's last checkpoint kept, the second's epoch 1

    resumed_steps = []
    network.set_params(resume=True, on_epoch=lambda metrics, step: resumed_steps.append((next(iter(metrics)), step)))
    resumed = SeedEnsemble(network, count=2).fit(rows, labels, validation=(val_rows, val_labels))
    assert resumed_steps == [("network2_train_loss", 2)]  # the first not trained again, the second from epoch 2
    assert [len(member.history_) for member in resumed.networks_] == [2, 2]
    assert list(tmp_path.glob("*.pt")) == []


def test_a_blend_of_two_networks_shares_the_first_blocks_with_both_and_averages_them(ensemble, pictures):
    from sklearn.linear_model import LogisticRegression

    from rakuten.features.pretrained import EfficientNetFeatures
    from rakuten.fine_tuning.shared_blocks import probabilities_together
    from rakuten.models import picture_pipeline

    import torch

    from rakuten.features.efficientnet_network import network_input

    fitted, _, _ = ensemble
    frozen = picture_pipeline(EfficientNetFeatures("lite0", image_size=128, precision="fp32"),
                              LogisticRegression(C=0.005, max_iter=500)).fit(pictures[0], pictures[1])
    rows = pictures[2].head(6)
    by_frozen, by_networks = probabilities_together(frozen, fitted, rows)
    assert fitted._shared[1] == 15  # Lite0's 16 blocks, the last one trained in each network
    np.testing.assert_allclose(by_frozen, frozen.predict_proba(rows), atol=1e-4)
    pixels = network_input(np.stack([frozen[0].picture(path) for path in rows["image_path"]])).contiguous(
        memory_format=torch.channels_last)  # as the frozen model reads them
    each = []
    with torch.inference_mode():
        for member in fitted.networks_:
            logits = torch.cat([member._network()(pixels), member._network()(pixels.flip(3))]).float()
            each.append(torch.softmax(logits, -1).reshape(2, len(rows), -1).mean(0).numpy())
    np.testing.assert_allclose(by_networks, np.mean(each, axis=0), atol=1e-3)  # their frozen blocks kept in fp16
    assert not np.allclose(each[0], each[1], atol=1e-3)  # two networks, not one twice
    loaded = pickle.loads(pickle.dumps(fitted))  # as the run logs it: the pass is built again once loaded
    assert not hasattr(loaded, "_shared")
    np.testing.assert_allclose(probabilities_together(frozen, loaded, rows)[1], by_networks, atol=1e-3)  # from fp16
    paths = rows["image_path"].head(2).tolist()
    drawn = [heatmap for _, heatmap, _ in fitted.grad_cams_of_choice(paths)]  # the first network's
    np.testing.assert_allclose(drawn, [heatmap for _, heatmap, _ in fitted.networks_[0].grad_cams_of_choice(paths)])


def test_a_blend_fits_the_networks_it_is_asked_for_and_refuses_none():
    from sklearn.linear_model import LogisticRegression

    from rakuten.models import picture_pipeline
    from rakuten.features.pretrained import EfficientNetFeatures

    frozen = picture_pipeline(EfficientNetFeatures("lite0", image_size=128), LogisticRegression())
    for networks in (0, 1.5):
        with pytest.raises(ValueError, match=r"model\.estimator\.networks"):
            Blend(frozen, tiny(), networks=networks).fit(None, [1, 2])


def test_a_cv_fold_of_a_blend_of_two_networks_says_what_the_first_alone_would_have_scored(tmp_path):
    """experiments/cv_folds.py on model=efficientnet_blend with networks=2: within one fit, the blend the
    first network alone makes (what networks=1 trains) beside the blend of both."""
    import json

    from experiments import cv_folds
    from rakuten.fine_tuning.blend import WEIGHTS
    from tests.helpers.stores import TEST_CACHE_DIR

    out = tmp_path / "networks.jsonl"
    assert cv_folds.main(["--folds", "1", "--k", "3", "--jobs", "1", "--out", str(out), f"cache.dir={TEST_CACHE_DIR}",
                          "model=efficientnet_blend", "model.estimator.networks=2", "model.estimator.encoder.epochs=1",
                          "model.estimator.encoder.variant=lite0", "model.estimator.encoder.trainable_blocks=1",
                          "model.estimator.encoder.image_size=128", "model.estimator.linear.descriptors.variant=lite0",
                          "model.estimator.linear.descriptors.image_size=128"]) == 0
    line = json.loads(out.read_text())
    assert line["first_network_weight"] in WEIGHTS and 0 < line["first_network_blend_f1"] <= 1
    assert len(line["networks_alone_f1"]) == 2 and all(0 < f1 <= 1 for f1 in line["networks_alone_f1"])
