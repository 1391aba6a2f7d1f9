"""The paired bootstrap of the weighted-F1 difference: the same metric as scikit-learn's, seeded,
an interval that holds zero for equal models and lies above it for a clearly better one."""

import numpy as np
from sklearn.metrics import f1_score

from rakuten.registry.gain import paired_bootstrap, weighted_f1


def predictions(accuracy: float, truth: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(truth)) < accuracy, truth, rng.choice([10, 40, 50, 2583], len(truth)))


def test_weighted_f1_is_scikit_learns():
    rng = np.random.default_rng(0)
    truth = rng.choice([10, 40, 50, 60, 2583], 500)
    guess = predictions(0.7, truth, 1)
    _, coded = np.unique(np.concatenate([truth, guess]), return_inverse=True)
    assert weighted_f1(coded[:500], coded[500:], coded.max() + 1) == f1_score(truth, guess, average="weighted")


def test_the_same_model_is_within_noise_and_a_better_one_above_it():
    truth = np.random.default_rng(2).choice([10, 40, 50, 60, 2583, 1280], 900)
    champion = predictions(0.70, truth, 3)
    same = paired_bootstrap(truth, champion, champion)
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0) and not same.significant
    better = paired_bootstrap(truth, predictions(0.85, truth, 4), champion)
    assert better.low > 0 and better.significant and better.describe().endswith("above noise")
    close = paired_bootstrap(truth, predictions(0.70, truth, 5), champion)
    assert close.low < 0 < close.high and close.describe().endswith("within noise")
    assert paired_bootstrap(truth, predictions(0.85, truth, 4), champion) == better  # seeded


def test_its_words():
    from rakuten.registry.gain import Gain

    assert Gain(0.0024, -0.0041, 0.0090).describe() == "+0.0024 [-0.0041, +0.0090], within noise"
