import os
import stat
import subprocess
import sys

import joblib
import numpy as np
import pytest

from rakuten import data
from rakuten.features.cache import cache_key, fit_features
from rakuten.features.text import build_text_features
from tests.helpers.stores import SAMPLE_DIR


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
    assert not any(p.name.startswith(".secret") for p in folder.iterdir()), "the key lives beside what it signs"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    for _ in range(2):
        fitted = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", shared)
        assert not fitted.cache_hit
    assert list(shared.iterdir()) == []


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    """This test's user key, kept outside every cache folder."""
    from rakuten.features.signing import KEY_ENV

    key = tmp_path / "home" / ".config" / "rakuten" / "cache.key"
    monkeypatch.setenv(KEY_ENV, str(key))
    return key


def test_the_key_is_private_and_outside_the_cache(tmp_path, own_key):
    split = parts()
    fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", tmp_path / "c")
    assert stat.S_IMODE(own_key.stat().st_mode) == 0o600 and stat.S_IMODE(own_key.parent.stat().st_mode) == 0o700
    assert not (tmp_path / "c" / own_key.name).exists()


def test_a_cache_copied_from_elsewhere_with_a_resigned_pickle_runs_nothing(tmp_path, own_key, monkeypatch):
    """Finding 1: a teammate's (or a backup's) cache folder, an entry replaced by a pickle that runs
    code and re-signed with the key of whoever made the folder, is rebuilt here, never loaded."""
    from rakuten.features import cache, signing

    split = parts()
    theirs = tmp_path / "theirs.key"
    monkeypatch.setenv(signing.KEY_ENV, str(theirs))  # the other user makes the folder and its entry
    folder = tmp_path / "copied"
    fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", folder)
    marker = tmp_path / "code-ran"
    joblib.dump(LeavesAMark(marker), folder / "k.joblib")
    (folder / "k.hmac").write_bytes(cache._signature(folder, folder / "k.joblib"))  # re-signed with their key
    monkeypatch.setenv(signing.KEY_ENV, str(own_key))  # then this user trains with the copied folder
    fitted = fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", folder)
    assert not marker.exists(), "a pickle from a copied cache was loaded"
    assert not fitted.cache_hit and fitted.train.shape[0] == len(split.X_train)


def test_under_a_permissive_umask_the_cache_is_private_and_used(tmp_path, own_key):
    """Finding 11: under umask 002 every folder the project creates is 0700 and the cache works."""
    script = (
        "import os; os.umask(0o002)\n"
        "from rakuten import data\n"
        "from rakuten.features.cache import fit_features\n"
        "from rakuten.features.text import build_text_features\n"
        "from tests.helpers.stores import SAMPLE_DIR\n"
        "p, l = data.load_labelled(SAMPLE_DIR, max_rows=300); s = data.split(p, l)\n"
        "hits = [fit_features(build_text_features({'w': {'column': 'text'}}), s.X_train, s.X_test, 'k',"
        f" {str(tmp_path / 'a' / 'b' / 'cache')!r}).cache_hit for _ in range(2)]\n"
        "print(hits)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RAKUTEN_CACHE_KEY_FILE": str(own_key)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, True]" and "not private" not in done.stderr
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "cache"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_shared_cache_folder_is_reported_once_visibly(tmp_path, own_key, capsys):
    from rakuten.features import signing

    split = parts()
    shared = tmp_path / "group-writable"
    shared.mkdir()
    shared.chmod(0o775)
    signing._reported.clear()
    for _ in range(3):
        fit_features(build_text_features({"w": {"column": "text"}}), split.X_train, split.X_test, "k", shared)
    said = [line for line in capsys.readouterr().err.splitlines() if "not private" in line]
    assert len(said) == 1 and str(shared) in said[0] and said[0].startswith("warning: ")


def test_a_change_to_any_feature_module_is_a_new_key(tmp_path, monkeypatch):
    from rakuten.features import pretrained

    before = cache_key("a", {"x": 1})
    copy = tmp_path / "features"
    import shutil

    shutil.copytree(os.path.dirname(pretrained.__file__), copy)
    (copy / "pretrained.py").write_text((copy / "pretrained.py").read_text() + "\n# changed\n")
    from rakuten.features import text

    monkeypatch.setattr(text, "__file__", str(copy / "text.py"))
    assert cache_key("a", {"x": 1}) != before
