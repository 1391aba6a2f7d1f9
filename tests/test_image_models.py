"""Where the Keras networks run: `model.device` resolved against what TensorFlow sees."""

import pytest

from tests.helpers.stores import requires_extra

requires_extra("tensorflow", "images")
from rakuten import image_models  # noqa: E402 - after the check: it imports Keras


def test_auto_is_a_gpu_when_tensorflow_sees_one_else_the_cpu():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    assert image_models.keras_device("auto") == ("/GPU:0" if gpus else "/CPU:0")
    assert image_models.keras_device("cpu") == "/CPU:0"
    if not gpus:
        with pytest.raises(ValueError, match="model.device=cuda but TensorFlow sees no GPU"):
            image_models.keras_device("cuda")
    with pytest.raises(ValueError, match="model.device must be auto, cpu or cuda"):
        image_models.keras_device("tpu")
