import numpy as np

from rakuten import data
from rakuten.features.cache import cache_key, fit_features
from rakuten.features.text import build_text_features
from tests.conftest import SAMPLE_DIR


def parts():
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=300)
    return data.split(products, labels)


def test_second_fit_is_a_hit_with_the_same_matrices(tmp_path):
    split = parts()
    key = cache_key(split.fingerprint, {"words": 1})
    first = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, key, tmp_path)
    second = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, key, tmp_path)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert (first.train != second.train).nnz == 0 and (first.test != second.test).nnz == 0
    assert np.array_equal(second.transformer.transform(split.X_test).toarray(), first.test.toarray())


def test_no_cache_dir_means_no_cache(tmp_path):
    split = parts()
    for _ in range(2):
        fitted = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", None)
        assert not fitted.cache_hit


def test_key_depends_on_data_and_config():
    assert cache_key("a", {"x": 1}) == cache_key("a", {"x": 1})
    assert cache_key("a", {"x": 1}) != cache_key("b", {"x": 1})
    assert cache_key("a", {"x": 1}) != cache_key("a", {"x": 2})


def test_corrupt_entry_is_rebuilt(tmp_path):
    split = parts()
    (tmp_path / "k.joblib").write_bytes(b"not a joblib file")
    fitted = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", tmp_path)
    assert not fitted.cache_hit and fitted.train.shape[0] == len(split.X_train)
    assert fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k",
                        tmp_path).cache_hit
