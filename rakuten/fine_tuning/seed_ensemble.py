"""Several fine-tunings of one network, each from its own seed, their probabilities averaged: what a
blend's `networks` setting trains (`rakuten.fine_tuning.Blend`).

On a thousand pictures a network's answers depend on its seed (its new head, its crops, the order
of its batches) as much as on any setting tried: on 3 folds of the shared pictures seed 43 instead
of 42 moved the blend by -0.022 to +0.036. The mean of two seeds' networks was the one lever
measured above that noise: +0.0091 ± 0.0086 on the blend over 5 folds, for twice the training
(docs/pretrained.md; `preset=best_image` keeps one network). Every network learns from the same
rows and stops early on the same validation rows; network i (from 0) trains with `random_state + i`.

Each network keeps its last checkpoint until all are fitted, so that a job killed while the second
trains resumes (`resume=true`) with the first as it ended, not from its first epoch.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


class SeedEnsemble(ClassifierMixin, BaseEstimator):
    def __init__(self, network, count: int = 2):
        self.network = network  # a fine-tuned network (FineTunedEfficientNet, FineTunedE5), unfitted
        self.count = count

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(getattr(self.network, "requirements", ()))

    def fit(self, X, y, validation=None):
        self.__dict__.pop("_shared", None)  # a blend's pass built on the networks this fit replaces
        seed = int(self.network.random_state)
        members = [_member(self.network, seed + number, number) for number in range(int(self.count))]
        self.networks_ = []
        for number, member in enumerate(members, start=1):
            print(f"network {number} of {len(members)} (seed {member.random_state})", flush=True)
            self.networks_.append(member.fit(X, y, validation=validation))
        for member in self.networks_:  # all fitted: nothing to resume
            member.__dict__.pop("keep_checkpoint_")
            member.__dict__.pop("checkpoint_").remove()
        self.classes_ = self.networks_[0].classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.mean([member.predict_proba(X) for member in self.networks_], axis=0)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def probabilities_beside(self, frozen_model, X) -> tuple[np.ndarray, np.ndarray] | None:
        """(`frozen_model`'s probabilities, the networks' mean) of `X`, computed together where they
        run the same first blocks (pictures: `rakuten.fine_tuning.shared_blocks`); None where not."""
        if not hasattr(self.networks_[0], "probabilities_beside"):
            return None
        from rakuten.fine_tuning.shared_blocks import probabilities_together

        return probabilities_together(frozen_model, self, X)

    def grad_cams_of_choice(self, paths: list[str], codes=None):
        """The first network's Grad-CAM (a heatmap is one network's gradients)."""
        return self.networks_[0].grad_cams_of_choice(paths, codes=codes)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_shared", None)  # a picture blend's pass: built again once loaded
        return state


def _member(network, seed: int, number: int):
    """A clone of `network` with its own seed, logging its epochs under its own names (the first as
    a network alone does), its checkpoint kept after its fit (`keep_checkpoint_`)."""
    member = clone(network).set_params(random_state=seed)
    if number and member.on_epoch is not None:
        member.on_epoch = _renamed(member.on_epoch, f"network{number + 1}_")
    member.keep_checkpoint_ = True
    return member


class _renamed:
    """An epoch logger whose metric names get `prefix`: two networks' curves apart in the UI."""

    def __init__(self, on_epoch, prefix: str):
        self.on_epoch, self.prefix = on_epoch, prefix

    def __call__(self, metrics: dict, step: int) -> None:
        self.on_epoch({f"{self.prefix}{name}": value for name, value in metrics.items()}, step)
