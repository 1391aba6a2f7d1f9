"""Image networks (the seed's Sequential CNN, ResNet50), their training loop and Grad-CAM.

Class indices are positions in one sorted array of prdtypecodes (`classes`), saved with every
model: the seed's evaluation scored 0.06 against 0.46 in training by mixing two orders.

The builders and `fit` use Keras alone (any backend: `experiments/cnn_ablation.py` runs them on
PyTorch where a GPU has no TensorFlow); reading pictures (tf.data) and Grad-CAM need TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from rakuten import data


def build_sequential(input_shape, n_classes: int, filters=(32, 64, 128), kernel_size: int = 3,
                     dropout: float = 0.25, dense_units: int = 512, dense_dropout: float = 0.5) -> keras.Model:
    """The seed's CNN: 3 x (Conv2D + MaxPooling2D + Dropout), Flatten, Dense ReLU, Dropout, softmax."""
    layers = [keras.Input(shape=tuple(input_shape))]
    for number, width in enumerate(filters):
        layers += [
            keras.layers.Conv2D(width, kernel_size, activation="relu", padding="same", name=f"conv{number}"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(dropout),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(dense_units, activation="relu"),
        keras.layers.Dropout(dense_dropout),
        keras.layers.Dense(n_classes, activation="softmax", name="classes"),
    ]
    return keras.Sequential(layers, name="sequential_cnn")


def build_small_cnn(input_shape, n_classes: int, filters=(32, 64, 128, 256), dropout: float = 0.3) -> keras.Model:
    """A small modern CNN for a thousand pictures: per stage two 3x3 convolutions with batch
    normalisation, then max pooling; global average pooling instead of Flatten -> Dense 512 (the
    seed's 4M-weight dense layer, which memorises 1.4k pictures), dropout, softmax."""
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    for number, width in enumerate(filters):
        for repeat in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{number}_{repeat}")(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def build_resnet50(input_shape, n_classes: int, weights: str | None = None, trainable_layers: int | None = None,
                   dense_units: int = 128) -> keras.Model:
    """ResNet50 base + Dense ReLU + softmax.

    `weights`: "imagenet" (downloads; needs internet), a path to a weights file, or None (random).
    `trainable_layers`: how many of the base's last layers train (None: all; 0: the base is frozen).
    The base's layers live in this model itself, so Grad-CAM can reach its last convolution.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    imagenet = weights == "imagenet"
    base = keras.applications.ResNet50(include_top=False, weights="imagenet" if imagenet else None,
                                       input_tensor=inputs)
    if weights and not imagenet:
        base.load_weights(weights)
    if trainable_layers is not None:
        frozen = len(base.layers) - trainable_layers
        for number, layer in enumerate(base.layers):
            layer.trainable = number >= frozen
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="resnet50_classifier")


class ValidationF1(keras.callbacks.Callback):
    """Adds `val_f1_weighted` (the challenge metric on the validation pictures) to each epoch's
    logs, for early stopping and the learning curve."""

    def __init__(self, validation, targets):
        super().__init__()
        self.validation = validation
        self.targets = np.asarray(targets)

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import f1_score

        predicted = np.argmax(self.model.predict(self.validation, verbose=0), axis=1)
        if logs is not None:
            logs["val_f1_weighted"] = f1_score(self.targets, predicted, average="weighted")


class EpochLogger(keras.callbacks.Callback):
    """Hands each epoch's logs to `log(metrics, step)` (MLflow, through rakuten.tracking)."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.log(metrics, epoch)


@dataclass(frozen=True)
class Training:
    """How a network is trained (`conf/trainer`): Adam at `learning_rate` for at most `epochs`, the
    rate halved on plateaus of the validation loss (`plateau`, the seed's: patience 4, min_lr 1e-4) or
    following a cosine decay to zero (`cosine`), categorical cross-entropy with `label_smoothing`, and
    EarlyStopping on `monitor` (`val_loss`, or `val_f1_weighted`; best weights kept; `patience=None`: none)."""

    epochs: int
    learning_rate: float
    patience: int | None = 6
    seed: int = 42
    schedule: str = "plateau"
    label_smoothing: float = 0.0
    monitor: str = "val_loss"


def fit(model: keras.Model, train, validation, training: Training, on_epoch=None, validation_targets=None,
        n_classes: int | None = None) -> dict:
    """`model` trained as `training` says on the `train` batches, `validation` driving the callbacks
    (`validation_targets`: the class indices of `validation`, for `val_f1_weighted`). Returns the history."""
    epochs, learning_rate, patience, seed = training.epochs, training.learning_rate, training.patience, training.seed
    schedule, label_smoothing, monitor = training.schedule, training.label_smoothing, training.monitor
    keras.utils.set_random_seed(seed)
    callbacks = []
    rate = learning_rate
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * len(train))
    elif schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=4,
                                                           min_lr=min(1e-4, learning_rate)))
    else:
        raise ValueError(f"model.schedule must be plateau or cosine, got {schedule!r}")
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=_loss(label_smoothing, n_classes),
                  metrics=["accuracy"])
    if monitor == "val_f1_weighted":
        callbacks.insert(0, ValidationF1(validation, validation_targets))  # before EarlyStopping reads it
    elif monitor != "val_loss":
        raise ValueError(f"model.monitor must be val_loss or val_f1_weighted, got {monitor!r}")
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True,
                                                       mode="max" if monitor == "val_f1_weighted" else "min"))
    if on_epoch is not None:
        callbacks.append(EpochLogger(on_epoch))
    # shuffle=False: the training dataset shuffles itself each epoch
    history = model.fit(train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=2,
                        shuffle=False)
    return history.history


def _loss(label_smoothing: float, n_classes: int | None):
    """Sparse categorical cross-entropy; with label smoothing, on one-hot targets (Keras's sparse
    loss has no smoothing)."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=float(label_smoothing))

    def loss(y_true, y_pred):
        return smoothed(keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"), n_classes), y_pred)

    return loss


def last_conv_layer(model: keras.Model) -> str:
    """The last layer with a spatial (4-D) output: where Grad-CAM looks."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name
        try:
            output = layer.output
        except AttributeError:  # a Sequential's layers have no symbolic output
            continue
        if len(output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer):
            return layer.name
    raise ValueError(f"{model.name} has no convolution output to explain")


def _probe(model: keras.Model, layer: str) -> keras.Model:
    """A model giving `layer`'s output and the class probabilities."""
    if isinstance(model, keras.Sequential):  # no symbolic graph: call the layers again
        inputs = keras.Input(shape=model.inputs[0].shape[1:])
        x, target = inputs, None
        for each in model.layers:
            x = each(x)
            if each.name == layer:
                target = x
        return keras.Model(inputs, [target, x])
    return keras.Model(model.inputs, [model.get_layer(layer).output, model.output])


def grad_cam(model: keras.Model, pixels: np.ndarray, class_index: int | None = None, layer: str | None = None):
    """Grad-CAM heatmap (values in [0, 1], the size of `layer`'s output) for one image, and the
    class index it explains (the predicted one unless given)."""
    import tensorflow as tf

    probe = _probe(model, layer or last_conv_layer(model))
    batch = tf.convert_to_tensor(pixels[None, ...])
    with tf.GradientTape() as tape:
        features, probabilities = probe(batch, training=False)
        index = int(tf.argmax(probabilities[0])) if class_index is None else class_index
        target = probabilities[:, index]
    gradients = tape.gradient(target, features)
    weights = tf.reduce_mean(gradients, axis=(0, 1, 2))
    heatmap = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1)).numpy()
    return (heatmap / heatmap.max() if heatmap.max() > 0 else heatmap), index


@dataclass(frozen=True)
class Network:
    """A Keras network as its config asks it (`conf/network`, `conf/trainer`), typed: the architecture
    (its `_target_` node, built anew at every fit), how pictures are read, how it is trained."""

    architecture: dict  # the `network` node: `_target_` and its arguments
    reading: dict  # image_size, grayscale, preprocess, channels: `features.network_input.decode`'s options
    training: Training
    batch_size: int
    validation_size: float | int  # a share of the pictures, or a count
    device: str  # auto, cpu or cuda

    @classmethod
    def of(cls, model: dict, seed: int = 42) -> Network:
        reading = {"image_size": [int(s) for s in model["image_size"]], "grayscale": bool(model["grayscale"]),
                   "preprocess": str(model["preprocess"]), "channels": int(model["channels"])}
        training = Training(int(model["epochs"]), float(model["learning_rate"]), model["patience"], seed,
                            str(model["schedule"]), float(model["label_smoothing"]), str(model["monitor"]))
        return cls(dict(model["network"]), reading, training, int(model["batch_size"]),
                   model["validation_size"], str(model["device"]))

    def seeded(self, seed: int) -> Network:
        from dataclasses import replace

        return replace(self, training=replace(self.training, seed=seed))


def settings_of(network: Network, classes) -> dict:
    """What a logged image model needs to read pictures as in training, and its class order."""
    return {"classes": [int(c) for c in classes], **network.reading}


def reading(settings: dict) -> dict:
    """The options of `features.network_input.decode` / `dataset` in `settings`."""
    return {k: settings[k] for k in ("image_size", "grayscale", "preprocess", "channels")}


def keras_device(device: str) -> str:
    """TensorFlow's name for `model.device`: `auto` is the first GPU TensorFlow sees, else the CPU. The
    project installs tensorflow-cpu; a GPU needs `pip install tensorflow[and-cuda]==<the same version>`."""
    import tensorflow as tf

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"model.device must be auto, cpu or cuda, got {device!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda" and not gpus:
        raise ValueError("model.device=cuda but TensorFlow sees no GPU (tensorflow-cpu is installed; a GPU needs "
                         "tensorflow[and-cuda]): use model.device=auto or cpu")
    return "/GPU:0" if gpus and device != "cpu" else "/CPU:0"


def fit_network(network: Network, augment: dict | None, X, y, classes, on_epoch=None):
    """Build `network` and fit it on pictures X (`image_path`) with labels y, augmented by `augment`;
    a stratified `validation_size` of them drives the callbacks. Returns (network, history, settings)."""
    from hydra.utils import instantiate

    from rakuten.features.network_input import dataset

    settings, seed = settings_of(network, classes), network.training.seed
    options, batch = reading(settings), network.batch_size
    index_of = {code: number for number, code in enumerate(classes)}
    fitting = data.split(X, y, network.validation_size, seed)
    train_ds = dataset(fitting.X_train["image_path"], fitting.y_train.map(index_of), shuffle=True,
                       batch_size=batch, augment=augment, seed=seed, reading=options)
    validation_ds = dataset(fitting.X_test["image_path"], fitting.y_test.map(index_of), batch_size=batch,
                            reading=options)
    import tensorflow as tf

    with tf.device(keras_device(network.device)):
        built = instantiate(network.architecture, input_shape=(*settings["image_size"], settings["channels"]),
                            n_classes=len(classes))
        history = fit(built, train_ds, validation_ds, network.training, on_epoch,
                      validation_targets=fitting.y_test.map(index_of).to_numpy(), n_classes=len(classes))
    return built, history, settings


def predict_proba(network: keras.Model, settings: dict, paths, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (columns in `settings["classes"]` order) of the pictures at `paths`."""
    from rakuten.features.network_input import dataset

    return network.predict(dataset(paths, batch_size=batch_size, cache=False, reading=reading(settings)), verbose=0)


def grad_cam_samples(network: keras.Model, settings: dict, paths: pd.Series, count: int, seed: int):
    """(index, picture as shown, heatmap, predicted prdtypecode) for `count` of `paths`."""
    from PIL import Image

    from rakuten.features.network_input import decode

    size = tuple(settings["image_size"][::-1])
    for index, path in paths.sample(min(count, len(paths)), random_state=seed).items():
        heatmap, class_index = grad_cam(network, decode(path, **reading(settings)).numpy())
        picture = np.asarray(Image.open(path).convert("RGB").resize(size))
        yield index, picture, heatmap, settings["classes"][class_index]
