"""The fine-tuned EfficientNet-Lite0 on real product pictures (the bundled sample's), tiny: the four
most common classes, its last block learning, two epochs."""

import pickle

import numpy as np
import pytest

from tests.helpers.stores import SAMPLE_DIR, requires_extra

pytestmark = pytest.mark.slow  # trains a convolutional network: CI's tier

requires_extra("efficientnet_lite_pytorch", "pretrained")

from rakuten import data_pictures  # noqa: E402
from rakuten.fine_tuning import FineTunedEfficientNet  # noqa: E402
from rakuten.fine_tuning.picture_classifier import _random_crop  # noqa: E402


@pytest.fixture(scope="module")
def pictures():
    """(rows, labels) of the sample's pictures of its four most common classes."""
    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    kept = labels.isin(labels.value_counts().index[:4])
    return frame.loc[kept, ["image_path"]], labels[kept]


def tiny(**settings) -> FineTunedEfficientNet:
    return FineTunedEfficientNet(**{"epochs": 2, "trainable_blocks": 1, "batch_size": 16, "validation_size": 0.25,
                                    "learning_rate": 1e-3, **settings})


def test_it_learns_logs_each_epoch_and_predicts_the_same_after_pickling(pictures, tmp_path):
    rows, labels = pictures
    epochs = []
    model = tiny(on_epoch=lambda metrics, step: epochs.append((step, metrics)), checkpoint_dir=str(tmp_path))
    model.fit(rows, labels)
    assert [step for step, _ in epochs] == [1, 2]
    assert {"train_loss", "val_f1_weighted", "learning_rate", "pictures_per_s"} <= set(epochs[0][1])
    assert epochs[-1][1]["train_loss"] < np.log(4) and epochs[-1][1]["val_f1_weighted"] > 0.4  # a guess: 0.25
    assert list(tmp_path.iterdir()) == []  # the checkpoint goes once the fit ends
    proba = model.predict_proba(rows.head(12))
    assert proba.shape == (12, 4) and np.allclose(proba.sum(1), 1, atol=1e-4)
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.on_epoch is None and not hasattr(loaded, "_built")
    np.testing.assert_allclose(loaded.predict_proba(rows.head(12)), proba, atol=2e-2)  # fp16 weights
    assert not any(type(module).__name__ == "BatchNorm2d" for module in loaded._network().modules())  # folded
    pictures, network = model._decoded(rows["image_path"].head(4).tolist()), model._network()
    averaged = model._proba(network, pictures)  # the pictures and their mirrors in one batch
    model.mirror_at_prediction = False
    alone, mirrored = model._proba(network, pictures), model._proba(network, pictures.flip(3))
    model.mirror_at_prediction = True
    assert np.abs(averaged - (alone + mirrored) / 2).max() < 2e-3
    assert np.abs(alone - mirrored).max() > 1e-2  # a mirror changes the answer: the average is neither
    drawn = model.grad_cams_of_choice(rows["image_path"].head(2).tolist())
    assert [(picture.shape, heatmap.shape) for picture, heatmap, _ in drawn] == [((224, 224, 3), (7, 7))] * 2
    assert all(0 <= heatmap.min() and heatmap.max() <= 1 and code in model.classes_ for _, heatmap, code in drawn)


def test_a_fitted_network_predicts_compiled_by_openvino_as_it_does_in_torch(pictures, monkeypatch):
    from rakuten.features import openvino_engine

    requires_extra("openvino", "pretrained")
    rows, labels = pictures
    model = tiny(epochs=1, precision="fp32").fit(rows, labels)
    answers, compiled = {}, {}
    for engine in ("torch", "auto"):
        monkeypatch.setenv(openvino_engine.ENGINE_ENV, engine)
        loaded = pickle.loads(pickle.dumps(model))
        answers[engine] = loaded.predict_proba(rows.head(12))
        compiled[engine] = hasattr(loaded, "_compiled_network")
    assert compiled == {"torch": False, "auto": True}
    np.testing.assert_allclose(answers["auto"], answers["torch"], atol=1e-4)  # both fp32, the mirror averaged
    np.testing.assert_allclose(loaded.predict_proba(rows.head(3)), answers["auto"][:3], atol=1e-5)  # another batch
    assert not hasattr(pickle.loads(pickle.dumps(loaded)), "_compiled_network")


def test_only_the_last_blocks_learn_and_batch_norm_keeps_imagenets_statistics(pictures):
    model = tiny(epochs=1, validation_size=0)
    rows, labels = pictures
    model.fit(rows.head(32), labels.head(32))
    network = model._network()
    before = {name: value.detach().clone() for name, value in network.state_dict().items()}
    network.train()
    assert not network.backbone._bn0.training and not network.backbone._blocks[-1]._bn1.training
    assert network.backbone._blocks[-1].training and not network.backbone._blocks[0].training
    learning = {name for name, p in network.named_parameters() if p.requires_grad}
    assert any(name.startswith("backbone._blocks.15.") for name in learning)
    assert not any(name.startswith("backbone._blocks.14.") or name.startswith("backbone._conv_stem") for name in learning)
    model.predict_proba(rows.head(4))
    after = network.state_dict()
    assert all(np.array_equal(before[name], after[name]) for name in before if "running_" in name)


def test_a_crop_is_the_networks_size_and_covers_at_least_its_share_of_the_picture():
    import torch

    columns = torch.arange(64, dtype=torch.float32).expand(3, 64, 64)  # each pixel: its column
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        crop = _random_crop(columns, 32, 0.5, generator)
        assert crop.shape == (1, 3, 32, 32)
        span = float(crop.max() - crop.min()) + 1  # the columns it covers
        assert span >= 64 * 0.5 * (3 / 4) ** 0.5 - 2  # its narrowest: half the area at aspect ratio 3/4


def test_a_resumed_fit_goes_on_from_the_last_epoch_checkpoint(pictures, tmp_path):
    """The state a fit interrupted after its first epoch leaves: a resumed fit trains the second only."""
    rows, labels = pictures
    interrupted = tiny(validation_size=0.0, checkpoint_dir=str(tmp_path))
    steps = []

    def stop_after_first(metrics, step):
        steps.append(step)
        if step == 1:
            raise KeyboardInterrupt  # Ctrl-C after epoch 1: its checkpoint is written before it is logged

    interrupted.set_params(on_epoch=stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(rows, labels)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    resumed_steps = []
    resumed = tiny(validation_size=0.0, checkpoint_dir=str(tmp_path), resume=True,
                   on_epoch=lambda metrics, step: resumed_steps.append(step))
    resumed.fit(rows, labels)
    assert resumed_steps == [2] and len(resumed.history_) == 2
    assert list(tmp_path.glob("*.pt")) == []


def test_bad_settings_are_one_line_naming_them(pictures):
    rows, labels = pictures
    with pytest.raises(ValueError, match="crop_scale"):
        tiny(crop_scale=0).fit(rows, labels)
    with pytest.raises(ValueError, match="variant"):
        tiny(variant="lite9").fit(rows, labels)
    with pytest.raises(ValueError, match="image_size"):
        tiny(image_size=32).fit(rows, labels)


def test_image_size_is_the_side_it_trains_predicts_and_explains_at(pictures):
    rows, labels = pictures
    model = tiny(epochs=1, validation_size=0.0, image_size=160).fit(rows, labels)
    assert model._decoded(rows["image_path"].head(1).tolist()).shape == (1, 3, 182, 182)  # 8/7: room for crops
    (picture, heatmap, _), = model.grad_cams_of_choice(rows["image_path"].head(1).tolist())
    assert picture.shape == (160, 160, 3) and heatmap.shape == (5, 5)  # Lite0's last map: a 32nd of the side
    state = pickle.loads(pickle.dumps(model)).__dict__
    del state["image_size"]  # a model pickled before image_size existed
    older = FineTunedEfficientNet.__new__(FineTunedEfficientNet)
    older.__dict__.update(state)
    assert older._size() == 224 and older.predict_proba(rows.head(2)).shape == (2, 4)
