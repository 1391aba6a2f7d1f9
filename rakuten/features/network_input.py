"""What a Keras network reads: picture paths in, batches of decoded, resized, preprocessed pixels
out (tf.data, imported where used: the augmentation layers serve any Keras backend). The picture
descriptors of scikit-learn models are `features.pictures`.

The same `decode` serves training and the logged model, so what a model saw in training is
exactly what it sees at prediction time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

PREPROCESS = ("rescale", "resnet50")

def augmentation(settings: dict | None, seed: int = 42):
    """Keras preprocessing layers from `conf/augment/` settings (flip, zoom, rotation in degrees,
    shift as a share of the size); None when nothing is asked. Training batches only."""
    import keras

    settings = settings or {}
    layers = []
    if settings.get("zoom"):
        layers.append(keras.layers.RandomZoom(settings["zoom"], seed=seed))
    if settings.get("rotation"):
        layers.append(keras.layers.RandomRotation(settings["rotation"] / 360, seed=seed))
    if settings.get("shift"):
        layers.append(keras.layers.RandomTranslation(settings["shift"], settings["shift"], seed=seed))
    if settings.get("flip"):
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    return keras.Sequential(layers, name="augment") if layers else None


def decode(path, image_size=(125, 125), grayscale: bool = False, preprocess: str = "rescale", channels: int = 3):
    """One file -> float32 pixels of `image_size`, grayscale when asked, scaled for the network.

    `channels` is what the network takes: grayscale pixels are repeated to 3 channels for ResNet50.
    """
    import tensorflow as tf

    raw = tf.io.read_file(path)
    image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), image_size)
    if grayscale:
        image = tf.image.rgb_to_grayscale(image)
        if channels == 3:
            image = tf.repeat(image, 3, axis=-1)
    if preprocess == "rescale":
        return image / 255.0
    if preprocess == "resnet50":
        from keras.applications.resnet50 import preprocess_input

        return preprocess_input(image)
    raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")


def dataset(
    paths, targets=None, *, reading: dict | None = None, batch_size=32, shuffle=False, augment: dict | None = None,
    seed=42, cache=True,
) -> "tf.data.Dataset":
    """A batched dataset of (pixels, class index) or of pixels alone when `targets` is None, each
    picture read by `decode(**reading)` (`image_size`, `grayscale`, `preprocess`, `channels`)."""
    import tensorflow as tf

    options = dict(reading or {})
    options["image_size"] = tuple(int(s) for s in options.get("image_size", (125, 125)))
    paths = tf.constant([str(p) for p in paths])
    items = tf.data.Dataset.from_tensor_slices(paths if targets is None else (paths, np.asarray(targets)))

    def load(path, *target):
        image = decode(path, **options)
        return (image, *target) if target else image

    items = items.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        items = items.cache()
    if shuffle:
        items = items.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    items = items.batch(batch_size)
    layers = augmentation(augment, seed)
    if layers is not None:
        items = items.map(lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return items.prefetch(tf.data.AUTOTUNE)
