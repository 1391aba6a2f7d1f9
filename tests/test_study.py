"""Studies' tables: each config's gain over the best, fold by fold, from runs in a real store."""

import mlflow
import pytest

from rakuten import study


def logged_job(overrides: str, fold_scores: list[float], seed: int = 42, max_rows: str = "None"):
    """A finished run as a `cv.folds` job logs it (its CV metrics from `study.cv_metrics`)."""
    with mlflow.start_run() as run:
        mlflow.set_tag(study.OVERRIDES_TAG, f"data=full {overrides}")
        mlflow.log_params({"seed": seed, "data.dir": "shared", "data.max_rows": max_rows})
        mlflow.log_metrics(study.cv_metrics(fold_scores, [1.0] * len(fold_scores), [1.0] * len(fold_scores),
                                            [100] * len(fold_scores)))
    return mlflow.get_run(run.info.run_id)


def test_each_fold_score_is_logged_and_the_table_pairs_configs_fold_by_fold(store):
    best = logged_job("model=a", [0.80, 0.70, 0.90])
    close = logged_job("model=b", [0.79, 0.69, 0.88])   # below in every fold
    assert [best.data.metrics[f"cv_f1_weighted_fold_{n}"] for n in (1, 2, 3)] == [0.80, 0.70, 0.90]
    table = study.table([close, best])
    assert table["config"].tolist() == ["model=a", "model=b"]
    assert table["cv_f1_weighted"].tolist() == ["0.8000 ± 0.0816", "0.7867 ± 0.0776"]
    assert table["vs_best"].tolist() == ["", "-0.0133 ± 0.0047"]  # spreads overlap; the paired gain says more


@pytest.mark.parametrize("other", [{"seed": 7}, {"max_rows": "300"}])
def test_configs_scored_on_other_folds_are_not_paired(store, other):
    best = logged_job("model=a", [0.80, 0.70, 0.90])
    elsewhere = logged_job("model=b", [0.79, 0.69, 0.88], **other)
    fewer = logged_job("model=c", [0.79, 0.69])
    assert study.table([best, elsewhere, fewer])["vs_best"].tolist() == ["", "", ""]
