import optuna
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

from rakuten import data, search
from rakuten.features.text import build_text_features
from rakuten.models import build_head
from tests.helpers.stores import SAMPLE_DIR


@pytest.fixture(scope="module")
def matrix():
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=600)
    features = build_text_features({"words": {"column": "text"}})
    return features.fit_transform(products), labels


def test_grid_values_from_specs():
    assert search.grid_values({"low": 0.01, "high": 1.0, "log": True}, 3) == pytest.approx([0.01, 0.1, 1.0])
    assert search.grid_values({"low": 10, "high": 30}, 3) == [10, 20, 30]
    assert search.grid_values({"choices": ["a", "b"]}, 5) == ["a", "b"]
    assert search.grid_values({"low": 1, "high": 9, "grid": [2, 4]}, 5) == [2, 4]


def test_grid_tries_every_combination_and_refits_the_best(matrix):
    X, y = matrix
    seen = []
    result = search.run_search(
        "grid", build_head(None, ComplementNB()), X, y,
        {"alpha": {"grid": [0.1, 1.0, 3.0]}, "norm": {"choices": [True, False]}},
        {"cv": 3}, seed=0, on_candidate=seen.append,
    )
    assert len(seen) == 6 == len(result.candidates)
    assert {(c.params["alpha"], c.params["norm"]) for c in seen} == {(a, n) for a in (0.1, 1.0, 3.0) for n in (True, False)}
    best = max(seen, key=lambda c: c.cv_score)
    assert result.best_params == best.params and result.best_score == pytest.approx(best.cv_score)
    assert result.head["model"].alpha == best.params["alpha"]
    assert len(result.head.predict(X[:5])) == 5


def test_bayes_draws_n_iter_candidates_within_bounds(matrix):
    X, y = matrix
    result = search.run_search("bayes", build_head(None, LinearSVC()), X, y,
                               {"C": {"low": 0.01, "high": 10.0, "log": True}}, {"cv": 3, "n_iter": 5}, seed=0)
    assert len(result.candidates) == 5
    assert all(0.01 <= c.params["C"] <= 10.0 for c in result.candidates)
    assert result.head["model"].C == pytest.approx(result.best_params["C"])


def test_optuna_is_seeded_in_memory(matrix):
    X, y = matrix
    space = {"alpha": {"low": 1e-5, "high": 1e-2, "log": True}, "loss": {"choices": ["hinge", "modified_huber"]}}
    runs = [search.run_search("optuna", build_head(None, SGDClassifier(random_state=0)), X, y, space,
                              {"cv": 3, "n_trials": 4, "progress_bar": False}, seed=3) for _ in range(2)]
    assert [c.params for c in runs[0].candidates] == [c.params for c in runs[1].candidates]
    assert runs[0].best_score == pytest.approx(runs[1].best_score)


def test_optuna_storage_makes_the_study_resumable(matrix, tmp_path):
    X, y = matrix
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    options = {"cv": 3, "n_trials": 3, "storage": storage, "study_name": "nb", "progress_bar": False,
               "heartbeat_seconds": 10, "grace_seconds": 60}
    space = {"alpha": {"low": 0.01, "high": 2.0, "log": True}}
    for _ in range(2):
        search.run_search("optuna", build_head(None, ComplementNB()), X, y, space, options, seed=0)
    study = optuna.load_study(study_name="nb", storage=storage)
    assert len(study.trials) == 6


def test_empty_space_and_unknown_kind_are_refused(matrix):
    X, y = matrix
    with pytest.raises(ValueError, match="no search_space"):
        search.run_search("grid", build_head(None, ComplementNB()), X, y, {}, {}, seed=0)
    with pytest.raises(ValueError, match="search must be one of"):
        search.run_search("random", build_head(None, ComplementNB()), X, y, {"alpha": {"grid": [1]}}, {}, seed=0)
