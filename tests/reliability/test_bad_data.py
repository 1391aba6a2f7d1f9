"""Fault: a data file or a config key with a flaw. Expected: one line naming the file, row or key
to fix (exit 2 from the command line), no run left RUNNING, nothing registered; files that are
merely unusual (a UTF-8 BOM, CRLF line endings, a class with one product) train."""

import gzip
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from rakuten import data
from rakuten.train import run
from tests.helpers.stores import SAMPLE_DIR, SPLIT_ONLY, config
from tests.helpers.jobs import assert_no_run_running, train
from tests.helpers.stores import write_challenge_files


@pytest.fixture
def files(tmp_path):
    """300 real sample products and their labels, written in the challenge's format."""
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=300)
    write_challenge_files(tmp_path, products, labels)
    return tmp_path, products, labels


def x_path(folder: Path) -> Path:
    return folder / data.X_FILE


def y_path(folder: Path) -> Path:
    return folder / data.Y_FILE


def fails_with(store, folder, message: str, *overrides: str):
    with pytest.raises((data.DataError, ValueError)) as raised:
        run(config(SPLIT_ONLY, f"data.dir={folder}", "register=false", *overrides))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert_no_run_running(store)
    assert MlflowClient().search_registered_models() == []
    return str(raised.value)


def test_duplicated_product_index_is_named(store, files):
    folder, products, labels = files
    products = pd.concat([products, products.iloc[[3, 3]]])
    products.to_csv(x_path(folder))
    first = products.index[3]
    fails_with(store, folder, f"{x_path(folder)}: 1 index values appear more than once (first: [{first}])")


def test_duplicated_label_index_is_named(store, files):
    folder, products, labels = files
    pd.concat([labels, labels.iloc[[7]]]).to_frame(data.LABEL).to_csv(y_path(folder))
    fails_with(store, folder, f"{y_path(folder)}: 1 index values appear more than once (first: [{labels.index[7]}])")


def test_header_only_x_file(store, files):
    folder, products, _ = files
    products.iloc[:0].to_csv(x_path(folder))
    fails_with(store, folder, f"{x_path(folder)} holds a header and no products")


def test_all_designations_empty(store, files):
    folder, products, _ = files
    products.assign(designation="").to_csv(x_path(folder))
    fails_with(store, folder, f"{x_path(folder)}: every designation is empty")


def test_non_utf8_bytes_name_the_row(store, files):
    folder, products, _ = files
    raw = x_path(folder).read_bytes().splitlines(keepends=True)
    letter = raw[42].index(b"e", raw[42].index(b",") + 1)
    raw[42] = raw[42][:letter] + b"\xe9" + raw[42][letter + 1:]  # data row 42: a latin-1 byte in its text
    x_path(folder).write_bytes(b"".join(raw))
    fails_with(store, folder, f"{x_path(folder)}: data row 42 (index {products.index[41]}) has bytes that are not UTF-8")


def test_non_integer_label_names_file_column_and_row(store, files):
    folder, _, labels = files
    labels.astype(object).where(labels.index != labels.index[9], "books").to_frame(data.LABEL).to_csv(y_path(folder))
    fails_with(store, folder, f"{y_path(folder)}: column prdtypecode, data row 10 (index {labels.index[9]}): "
                              "'books' is not an integer")


def test_truncated_gzip_is_named(store, files):
    folder, _, _ = files
    packed = gzip.compress(x_path(folder).read_bytes())
    x_path(folder).unlink()
    (folder / f"{data.X_FILE}.gz").write_bytes(packed[: len(packed) // 2])
    fails_with(store, folder, f"cannot read {folder / data.X_FILE}.gz")


@pytest.mark.parametrize("override,key", [("data.max_rows=10", "data.max_rows=10"),
                                          ("data.test_size=1.5", "data.test_size=1.5")])
def test_bad_data_keys_are_named(store, files, override, key):
    fails_with(store, files[0], key, override)


def test_zero_trials_is_named(store, files):
    fails_with(store, files[0], "search.n_trials=0 must be at least 1", "search=optuna", "search.n_trials=0")


@pytest.mark.parametrize("variant", ["bom", "crlf"])
def test_bom_and_crlf_files_train(store, files, variant):
    folder, products, _ = files
    raw = x_path(folder).read_bytes()
    x_path(folder).write_bytes(b"\xef\xbb\xbf" + raw if variant == "bom" else raw.replace(b"\n", b"\r\n"))
    assert data.read_products(x_path(folder))[["designation", "description"]].equals(
        products[["designation", "description"]])
    assert run(config(SPLIT_ONLY, f"data.dir={folder}", "register=false")) > 0.1


def test_class_with_one_product_keeps_stratification(store, files, caplog):
    folder, products, labels = files
    lonely = labels.index[0]
    labels.loc[lonely] = 99999  # a class with a single product
    labels.to_frame(data.LABEL).to_csv(y_path(folder))
    run(config(SPLIT_ONLY, f"data.dir={folder}", "register=false"))
    logged = mlflow.search_runs(output_format="list")[0]
    assert logged.data.tags["train_only_classes"] == "99999"
    assert "99999" in caplog.text and "stay in the training part" in caplog.text
    parts = data.split(*data.load_labelled(folder))
    assert lonely in parts.X_train.index
    totals, tested = labels.value_counts(), parts.y_test.value_counts()
    off = {code: (int(tested.get(code, 0)), int(n)) for code, n in totals.items()
           if code != 99999 and abs(tested.get(code, 0) - 0.2 * n) > 1}
    assert off == {}, f"the other classes are no longer stratified (test, all): {off}"


def test_command_line_prints_one_line_and_exits_2(store, files, tmp_path):
    folder, products, _ = files
    pd.concat([products, products.iloc[[0]]]).to_csv(x_path(folder))
    result = train(store, tmp_path / "run", f"data.dir={folder}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {x_path(folder)}: 1 index values appear more than once (first: [{products.index[0]}]); "
        "each product needs its own index")
    assert_no_run_running(store)


def make_read_only(*paths: Path) -> bool:
    """Root writes any file whatever its mode: for root the paths are made immutable (chattr +i)."""
    if os.getuid() != 0:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return True
    return shutil.which("chattr") is not None and all(
        subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0 for path in paths)


def test_read_only_store_fails_at_once_in_one_line(store, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="rakuten-ro-"))
    database = folder / "mlflow.db"
    uri = f"sqlite:///{database}"
    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments()  # the store exists, with its tables
    try:
        if not make_read_only(database, folder):
            pytest.skip("cannot make a file read-only for root here (chattr failed)")
        started = time.monotonic()
        result = train(uri, tmp_path / "run", "cache.enabled=false")
        seconds = time.monotonic() - started
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: the tracking store {database} is not writable (")
        assert last.endswith("): fix its permissions or set mlflow.tracking_uri")
        assert seconds < 60  # MLflow's own retry loop took 108 s; this is start-up time
        print(f"read-only store refused in {seconds:.1f}s")
    finally:
        if os.getuid() == 0:
            subprocess.run(["chattr", "-i", str(database), str(folder)], capture_output=True)
        folder.chmod(0o755)
        database.chmod(0o644)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_fifo_in_place_of_the_x_file_is_named_not_read(files, store):
    """Before: "the folder has no such file", listing it in the same line (and a read would block)."""
    folder, _, _ = files
    x_path(folder).unlink()
    os.mkfifo(x_path(folder))
    with pytest.raises(data.DataError, match=r"X_train_update.csv is not a regular file"):
        run(config(SPLIT_ONLY, f"data.dir={folder}"))
    assert_no_run_running(store)


def test_the_data_folder_is_shown_as_text_in_the_registry(files, store, tmp_path_factory):
    """A folder named like Markdown or HTML (`<img src=x>`) is escaped in the version's description."""
    folder, _, _ = files
    strange = tmp_path_factory.mktemp("data") / "<img src=x onerror=alert(1)> [link](http:__x)"
    shutil.copytree(folder, strange)
    run(config(SPLIT_ONLY, f"data.dir='{strange}'"))
    description = MlflowClient().get_model_version("rakuten-text", "1").description
    assert "<img" not in description and "&lt;img src=x onerror=alert\\(1\\)&gt;" in description
    assert "[link](" not in description
