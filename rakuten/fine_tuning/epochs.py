"""A fine-tuning loop's manners: a checkpoint after every epoch (a killed job resumes from it),
early stopping on validation rows, one line and one logged step an epoch (the estimate first and
the progress lines are `rakuten.progress`'s, as every long stage's).

A checkpoint holds tensors and plain numbers only, read back with `torch.load(weights_only=True)`:
a file in a shared folder can never run code. Its name digests the estimator's settings and its
training rows, so `resume` finds the checkpoint of the same training and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rakuten.progress import duration


def training_key(settings: dict, texts: list[str], labels) -> str:
    """Which training a checkpoint belongs to: the settings that change it and its rows."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for text, label in zip(texts, labels):
        digest.update(text.encode("utf-8", "surrogateescape") + b"\x00" + str(label).encode() + b"\x01")
    return digest.hexdigest()[:24]


class Checkpoint:
    """The last epoch's state of one training, in `folder` (None: no checkpoints)."""

    def __init__(self, folder: str | Path | None, key: str):
        self.path = Path(folder) / f"{key}.pt" if folder else None

    def load(self) -> dict | None:
        import torch

        if self.path is None or not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, state: dict) -> None:
        """Written whole or not at all (a kill mid-write leaves the previous epoch's)."""
        import torch

        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save(state, temporary)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def validation_rows(labels: np.ndarray, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, validation positions): `size` of the rows, stratified where each class
    can give one (two rows a class, as many validation rows as classes), else drawn at random."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    held = int(np.ceil(size * len(labels)))
    stratify = labels if counts.min() >= 2 and held >= len(classes) else None
    return train_test_split(np.arange(len(labels)), test_size=held, random_state=seed, stratify=stratify)


def warmup_then_linear(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The learning rate's factor at a step: up linearly over `warmup_steps`, then down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


@dataclass
class Epoch:
    """One epoch as logged: MLflow steps are epochs (1, 2, ...)."""

    number: int
    train_loss: float
    val_f1_weighted: float | None  # None: no validation rows
    learning_rate: float
    items_per_s: float
    seconds: float

    def metrics(self, what: str) -> dict[str, float]:
        metrics = {"train_loss": self.train_loss, "learning_rate": self.learning_rate,
                   f"{what}_per_s": self.items_per_s, "seconds": self.seconds}
        if self.val_f1_weighted is not None:
            metrics["val_f1_weighted"] = self.val_f1_weighted
        return metrics

    def line(self, epochs: int, what: str, best: bool) -> str:
        val = "" if self.val_f1_weighted is None else f", val_f1_weighted {self.val_f1_weighted:.4f}" + \
            (" (best)" if best else "")
        return (f"epoch {self.number}/{epochs}: train_loss {self.train_loss:.3f}{val}, lr {self.learning_rate:.2g}, "
                f"{self.items_per_s:.1f} {what}/s, {duration(self.seconds)}")
