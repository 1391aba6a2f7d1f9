"""The epochs of a fine-tuning, whatever the network reads (texts, pictures): AdamW with a warm-up
then a linear decay, an epoch of clipped steps, the validation F1 after it, the best weights kept,
a checkpoint written, a line said and a step logged; early stopping after `patience` epochs
without a better validation F1; `resume` goes on from the last checkpoint of the same training.

Or, with `average_epochs`, every epoch runs and the network kept is the mean of the last epochs'
weights: on a thousand pictures the validation F1 swings by 0.02-0.05 from one epoch to the next,
so the epoch it picks is partly chance; a mean of nearby weights (the batch norms' statistics are
ImageNet's and frozen, so nothing needs recomputing) does not depend on that choice. On 4 folds of the
shared pictures it helped the network alone by 0.017 on average and its blend by 0.008 ± 0.016, within
the spread (docs/pretrained.md): an option, not the presets' default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from rakuten.fine_tuning.epochs import Checkpoint, Epoch, warmup_then_linear
from rakuten.progress import Progress


class FineTunedClassifier(ClassifierMixin, BaseEstimator):
    """What every fine-tuned network's scikit-learn face shares: `predict` from `predict_proba`, the
    trained weights kept in fp16 (`trained_`), the built network (`_built`, its first item) and the
    job's logger (`on_epoch`) left out of the pickle: the network is rebuilt on first use."""

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_built", None)
        state["on_epoch"] = None
        return state

    def _keep_trained(self, network) -> None:
        import torch

        self.trained_ = {name: value.detach().to("cpu", torch.float16).numpy()
                         for name, value in network.state_dict().items()}

    def _load_trained(self, network) -> None:
        import torch

        network.load_state_dict({name: torch.from_numpy(value).float() for name, value in self.trained_.items()})

    def _finished(self, checkpoint: Checkpoint) -> None:
        """The fit is done: its checkpoint removed (nothing to resume), or kept (`checkpoint_`) where
        an ensemble removes it once all its networks are fitted (`keep_checkpoint_`, `SeedEnsemble`)."""
        if getattr(self, "keep_checkpoint_", False):
            self.checkpoint_ = checkpoint
        else:
            checkpoint.remove()


@dataclass(frozen=True)
class Training:
    """How a fine-tuning runs its epochs: what it says ("e5 fine-tuning", "texts"), how long, who
    hears of each epoch (`on_epoch(metrics, step)`: the job logs it as an MLflow step), and how many
    batches are timed before the estimate (`settle_batches`: texts batched by length take unequal
    times: on 2 cores of an AMD EPYC without AMX 8 of them promised 16 min for 26, 32 promised 19 for
    27; pictures' batches are alike)."""

    name: str
    what: str
    epochs: int
    patience: int
    resume: bool
    on_epoch: Callable | None = None
    settle_batches: int = 8
    average_epochs: int = 0  # > 0: no early stopping; the last `average_epochs` epochs' weights averaged


def optimizer_and_schedule(groups: list[dict], weight_decay: float, warmup: float, total_steps: int):
    """AdamW over parameter groups (each with its own `lr`), its rate up linearly over `warmup` of
    the steps, then down to 0 at `total_steps`."""
    import torch

    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_then_linear(max(1, int(warmup * total_steps)), total_steps))
    return optimizer, schedule


def run_epochs(training: Training, network, optimizing: tuple, checkpoint: Checkpoint, items: int,
               one_epoch: Callable[[int, Progress], Epoch], validate: Callable[[], float | None]) -> list[dict]:
    """Train `network` for `training.epochs` (or fewer: early stopping), each epoch `one_epoch(number,
    progress)` then `validate()`; the best epoch's weights (or the mean of the last ones) are loaded
    back. The epochs' metrics."""
    optimizer, schedule = optimizing
    averaging = training.average_epochs > 0
    state = {"epoch": 0, "history": [], "best_f1": -1.0, "best": None, "stale": 0, "sum": None}
    saved = checkpoint.load() if training.resume else None
    if saved is not None:
        network.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
        print(f"{training.name}: resumed after epoch {state['epoch']} ({checkpoint.path})", flush=True)
    epochs_left = training.epochs - state["epoch"]
    with Progress(epochs_left * items, training.what, f"{training.name} ({epochs_left} epochs of {items:,})",
                  settle_updates=training.settle_batches) as progress:
        while state["epoch"] < training.epochs and (averaging or state["stale"] < max(1, training.patience)):
            epoch = one_epoch(state["epoch"] + 1, progress)
            epoch.val_f1_weighted = validate()
            _keep_if_best(network, epoch, state, training.what, copy_weights=not averaging)
            if averaging and epoch.number > training.epochs - training.average_epochs:
                _add_to_sum(network, state)
            checkpoint.save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                             "schedule": schedule.state_dict(), "state": state})  # first: a kill now loses nothing
            print(epoch.line(training.epochs, training.what, state["stale"] == 0 and epoch.val_f1_weighted is not None),
                  flush=True)
            if training.on_epoch is not None:
                training.on_epoch(epoch.metrics(training.what), epoch.number)
    if averaging:
        summed = min(training.average_epochs, state["epoch"])  # every epoch ran: the last ones were summed
        network.load_state_dict({name: value / summed for name, value in state["sum"].items()}, strict=False)
        score = validate()
        first = training.epochs - summed + 1
        print(f"{training.name}: the weights of epochs {first}-{training.epochs} averaged"
              + ("" if score is None else f", val_f1_weighted {score:.4f}"), flush=True)
    elif state["best"] is not None:
        network.load_state_dict(state["best"])
    return state["history"]


def _add_to_sum(network, state: dict) -> None:
    """This epoch's weights added to the running sum the kept network is the mean of (floating
    tensors only: a counter such as batch norm's `num_batches_tracked` stays the network's own)."""
    weights = {name: value.detach().float().clone() for name, value in network.state_dict().items()
               if value.is_floating_point()}  # a copy: .float() of fp32 weights is the live tensor itself
    state["sum"] = weights if state["sum"] is None else {name: state["sum"][name] + value
                                                         for name, value in weights.items()}


def _keep_if_best(network, epoch: Epoch, state: dict, what: str, copy_weights: bool) -> None:
    """The best validation F1 so far and, if `copy_weights` (not when averaging: the mean is kept,
    and a copy would double the checkpoint), that epoch's weights."""
    if epoch.val_f1_weighted is None or epoch.val_f1_weighted > state["best_f1"]:
        state.update(best_f1=epoch.val_f1_weighted or 0.0, stale=0,
                     best={k: v.detach().clone() for k, v in network.state_dict().items()} if copy_weights else None)
    else:
        state["stale"] += 1
    state["epoch"], state["history"] = epoch.number, [*state["history"], epoch.metrics(what)]


def clipped_steps(network, batches: Iterable, batch_loss: Callable, optimizing: tuple, number: int,
                  items: int, progress: Progress) -> Epoch:
    """One epoch of steps: `batch_loss(batch)` (a scalar tensor) for each batch of row positions,
    gradients clipped to norm 1. The epoch's mean loss, last learning rate and speed."""
    import torch

    optimizer, schedule = optimizing
    network.train()
    started, total = time.perf_counter(), 0.0
    for batch in batches:
        value = batch_loss(batch)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_([p for p in network.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        schedule.step()
        total += value.item() * len(batch)
        progress.update(len(batch))
    seconds = time.perf_counter() - started
    return Epoch(number, total / items, None, schedule.get_last_lr()[0], items / seconds, seconds)
