import numpy as np
import pytest

from rakuten import data_pictures
from tests.helpers.stores import requires_extra

requires_extra("tensorflow", "images")
from rakuten.features.network_input import augmentation, dataset, decode  # noqa: E402 - after the check


@pytest.fixture(scope="module")
def pictures(shared_dir):
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=54, seed=0)
    return frame, labels


def test_decode_resizes_scales_and_converts(pictures):
    path = pictures[0]["image_path"].iloc[0]
    rgb = decode(path, (125, 125)).numpy()
    assert rgb.shape == (125, 125, 3) and 0.0 <= rgb.min() and rgb.max() <= 1.0 and rgb.max() > 0.5
    gray = decode(path, (64, 80), grayscale=True, channels=1).numpy()
    assert gray.shape == (64, 80, 1)
    repeated = decode(path, (64, 64), grayscale=True, channels=3).numpy()
    assert repeated.shape == (64, 64, 3) and np.allclose(repeated[..., 0], repeated[..., 2])
    resnet = decode(path, (64, 64), preprocess="resnet50").numpy()
    assert resnet.min() < 0  # mean-centred, BGR, as ResNet50 expects
    with pytest.raises(ValueError, match="preprocess"):
        decode(path, (8, 8), preprocess="imagenet")


def test_dataset_batches_pixels_with_class_indices_in_order(pictures):
    frame, labels = pictures
    targets = np.arange(len(frame)) % 27
    batches = list(dataset(frame["image_path"], targets, reading={"image_size": (32, 32)}, batch_size=20))
    assert [b[0].shape[0] for b in batches] == [20, 20, 14]
    assert np.array_equal(np.concatenate([b[1].numpy() for b in batches]), targets)
    first = decode(frame["image_path"].iloc[0], (32, 32)).numpy()
    assert np.allclose(batches[0][0][0].numpy(), first)
    unlabelled = next(iter(dataset(frame["image_path"], reading={"image_size": (32, 32)}, batch_size=5)))
    assert unlabelled.shape == (5, 32, 32, 3)


def test_augmentation_levels_follow_the_seed():
    assert augmentation({"flip": False, "zoom": 0, "rotation": 0, "shift": 0}) is None
    low = augmentation({"flip": True, "zoom": 0.2})
    assert [type(layer).__name__ for layer in low.layers] == ["RandomZoom", "RandomFlip"]
    high = augmentation({"flip": True, "zoom": 0.1, "rotation": 10, "shift": 0.1})
    assert [type(layer).__name__ for layer in high.layers] == [
        "RandomZoom", "RandomRotation", "RandomTranslation", "RandomFlip"]
    assert high.layers[1].factor == pytest.approx((-10 / 360, 10 / 360))


def test_augmented_batches_differ_from_plain_ones(pictures):
    frame, _ = pictures
    paths, targets = frame["image_path"][:8], np.zeros(8)
    plain = next(iter(dataset(paths, targets, reading={"image_size": (48, 48)}, batch_size=8)))[0].numpy()
    moved = next(iter(dataset(paths, targets, reading={"image_size": (48, 48)}, batch_size=8,
                              augment={"zoom": 0.2, "rotation": 10, "shift": 0.1})))[0].numpy()
    assert plain.shape == moved.shape and not np.allclose(plain, moved)
