"""The fusion's combiners on probabilities whose right answer is known."""

import pytest
import numpy as np

from rakuten import fusion

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

CLASSES = np.array([10, 40, 50])


def one_hot(codes) -> np.ndarray:
    return np.eye(len(CLASSES))[np.searchsorted(CLASSES, codes)]


def test_align_places_columns_by_prdtypecode_and_zeroes_absent_ones():
    aligned = fusion.align(np.array([[0.3, 0.7]]), [50, 10], CLASSES)
    assert aligned.tolist() == [[0.7, 0.0, 0.3]]


def test_late_fusion_weights_the_part_that_is_right():
    truth = np.array([10, 40, 50, 40, 10, 50])
    wrong = one_hot(np.roll(truth, 1))
    for p_text, p_image, text_is_right in ((one_hot(truth), wrong, True), (wrong, one_hot(truth), False)):
        combiner = fusion.fit_combiner("late", p_text, p_image, truth, CLASSES)
        assert (combiner["weight"] > 0.5) == text_is_right and combiner["validation_f1_weighted"] == 1.0
        fused = fusion.combine(combiner, p_text, p_image, CLASSES)
        assert (CLASSES[fused.argmax(axis=1)] == truth).all()


def test_stacking_learns_from_both_parts_and_answers_in_class_order():
    truth = np.tile([10, 40, 50], 10)
    p_text = one_hot(truth) * 0.6 + 0.4 / 3
    combiner = fusion.fit_combiner("stacking", p_text, np.full_like(p_text, 1 / 3), truth, CLASSES)
    fused = fusion.combine(combiner, p_text, np.full_like(p_text, 1 / 3), CLASSES)
    assert fused.shape == (30, 3) and np.allclose(fused.sum(axis=1), 1)
    assert (CLASSES[fused.argmax(axis=1)] == truth).all()
