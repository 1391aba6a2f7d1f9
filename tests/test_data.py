import gzip

import pandas as pd
import pytest

from rakuten import data
from tests.helpers.stores import SAMPLE_DIR, write_challenge_files


def test_sample_is_real_challenge_rows_joined_by_index(shared_dir):
    products, labels = data.load_labelled(SAMPLE_DIR)
    assert list(products.columns[:2]) == ["designation", "description"]
    assert labels.nunique() == 27
    all_labels = data.read_labels(shared_dir / f"{data.Y_FILE}.gz")
    shared = data.read_products(shared_dir / f"{data.X_FILE}.gz")
    assert labels.equals(all_labels.loc[products.index])
    assert products["designation"].equals(shared.loc[products.index, "designation"])


def test_join_is_by_index_not_by_position(tmp_path, shared_dir):
    shared_products = data.read_products(shared_dir / f"{data.X_FILE}.gz")
    all_labels = data.read_labels(shared_dir / f"{data.Y_FILE}.gz")
    # a shuffled slice of products, beside all 84,916 labels in their own order
    products = shared_products.sample(300, random_state=0)
    write_challenge_files(tmp_path, products, all_labels)
    loaded, labels = data.load_labelled(tmp_path)
    assert len(loaded) == 300
    assert (labels.index == loaded.index).all()
    assert labels.equals(all_labels.loc[loaded.index])


def test_plain_and_gzipped_files_read_alike(tmp_path):
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=100)
    plain = write_challenge_files(tmp_path, products, labels)
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    write_challenge_files(gz_dir, products, labels, gz=True)
    for folder in (plain, gz_dir):
        again, again_labels = data.load_labelled(folder)
        assert again[["designation", "description"]].equals(products[["designation", "description"]])
        assert again_labels.equals(labels)


def test_null_description_becomes_empty_text(tmp_path):
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=50)
    products = products.drop(columns="description")
    write_challenge_files(tmp_path, products, labels)
    loaded, _ = data.load_labelled(tmp_path)
    assert (loaded["description"] == "").all()
    raw = pd.read_csv(SAMPLE_DIR / f"{data.X_FILE}.gz", index_col=0)
    assert raw["description"].isna().any(), "the sample should hold products without description"
    assert not data.read_products(SAMPLE_DIR / f"{data.X_FILE}.gz")["description"].isna().any()


def test_max_rows_keeps_a_stratified_subsample():
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=540, seed=1)
    full_products, full_labels = data.load_labelled(SAMPLE_DIR)
    assert len(products) == 540
    assert labels.nunique() == 27
    shares = labels.value_counts(normalize=True)
    full_shares = full_labels.value_counts(normalize=True)
    assert (shares - full_shares).abs().max() < 0.01


def test_split_is_stratified_and_fingerprinted():
    products, labels = data.load_labelled(SAMPLE_DIR)
    parts = data.split(products, labels, test_size=0.2, seed=42)
    assert len(parts.X_test) == 400 and len(parts.X_train) == 1600
    assert set(parts.y_test.unique()) == set(labels.unique())
    assert parts.fingerprint == data.split(products, labels, 0.2, 42).fingerprint
    assert parts.fingerprint != data.split(products, labels, 0.2, 7).fingerprint
    changed = products.copy()
    changed.iloc[0, 0] = "autre texte"
    assert parts.fingerprint != data.split(changed, labels, 0.2, 42).fingerprint


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(data.DataError, match="data folder not found"):
        data.load_labelled(tmp_path / "nowhere")
    with pytest.raises(data.DataError, match="has no X_train_update.csv"):
        data.load_labelled(tmp_path)


def test_csv_without_designation_is_refused(tmp_path):
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=50)
    write_challenge_files(tmp_path, products.rename(columns={"designation": "title"}), labels)
    with pytest.raises(data.DataError, match="no 'designation' column"):
        data.load_labelled(tmp_path)


def test_products_without_labels_are_refused(tmp_path):
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=50)
    write_challenge_files(tmp_path, products, labels.iloc[:40])
    with pytest.raises(data.DataError, match="10 of 50 products .* have no label"):
        data.load_labelled(tmp_path)


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / f"{data.X_FILE}.gz").write_bytes(b"this is not gzip")
    with pytest.raises(data.DataError, match="cannot read .*X_train_update.csv.gz"):
        data.read_products(tmp_path / f"{data.X_FILE}.gz")
    with gzip.open(tmp_path / "latin.csv.gz", "wb") as handle:
        handle.write(",designation\n0,caf\xe9\n".encode("latin-1"))
    with pytest.raises(data.DataError, match=r"latin.csv.gz: data row 1 \(index 0\) has bytes that are not UTF-8"):
        data.read_products(tmp_path / "latin.csv.gz")
