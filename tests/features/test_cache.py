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


class LeavesAMark:
    """Unpickling it touches a file: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_an_entry_without_its_hmac_is_never_unpickled(tmp_path):
    split = parts()
    folder = tmp_path / "cache"
    fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", folder)
    import joblib

    marker = tmp_path / "unpickled"
    joblib.dump(LeavesAMark(marker), folder / "k.joblib")  # planted: the signature no longer matches
    fitted = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", folder)
    assert not marker.exists(), "a planted pickle was loaded"
    assert not fitted.cache_hit
    assert fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k",
                        folder).cache_hit, "the rebuilt entry is signed again"


def test_cache_folder_is_private_and_a_shared_one_is_not_used(tmp_path):
    import stat

    split = parts()
    folder = tmp_path / "new"
    fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / ".secret").stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    for _ in range(2):
        fitted = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", shared)
        assert not fitted.cache_hit
    assert list(shared.iterdir()) == []
