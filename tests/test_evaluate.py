import numpy as np
import pytest

from rakuten import evaluate

Y_TRUE = np.array([10, 10, 10, 40, 40, 2583])
Y_PRED = np.array([10, 10, 40, 40, 40, 10])
LABELS = [10, 40, 2583]


def test_scores_are_the_challenge_metrics():
    scores = evaluate.score(Y_TRUE, Y_PRED)
    # per class F1: 10 -> 2*(2/3*2/3)/(4/3)=0.667, 40 -> 0.8, 2583 -> 0; supports 3, 2, 1
    assert scores["test_accuracy"] == pytest.approx(4 / 6)
    assert scores["test_f1_macro"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert scores["test_f1_weighted"] == pytest.approx((3 * 2 / 3 + 2 * 0.8) / 6)


def test_report_has_every_class_even_unpredicted():
    as_dict, as_text = evaluate.report(Y_TRUE, Y_PRED, LABELS)
    assert as_dict["2583"]["f1-score"] == 0 and as_dict["2583"]["support"] == 1
    assert as_dict["weighted avg"]["f1-score"] == pytest.approx(evaluate.score(Y_TRUE, Y_PRED)["test_f1_weighted"])
    assert "2583" in as_text


def test_confusion_matrix_is_row_normalised_with_prdtypecode_axes():
    figure = evaluate.plot_confusion_matrix(Y_TRUE, Y_PRED, LABELS)
    axes = figure.axes[0]
    shares = axes.images[0].get_array()
    assert np.allclose(shares.sum(axis=1), 1)
    assert shares[0, 1] == pytest.approx(1 / 3)
    assert [t.get_text() for t in axes.get_xticklabels()] == ["10", "40", "2583"]
    assert axes.get_ylabel() == "true prdtypecode"


def test_per_class_f1_chart_has_one_bar_per_class():
    as_dict, _ = evaluate.report(Y_TRUE, Y_PRED, LABELS)
    figure = evaluate.plot_per_class_f1(as_dict, LABELS)
    widths = [patch.get_width() for patch in figure.axes[0].patches]
    assert widths == pytest.approx([2 / 3, 0.8, 0])
