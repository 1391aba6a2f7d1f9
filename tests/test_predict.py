import gzip

import mlflow
import pandas as pd
import pytest

from rakuten import data, predict
from tests.helpers.stores import SAMPLE_DIR

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

CHAMPION = "models:/rakuten-text@champion"


@pytest.fixture(scope="module")
def model(champion_store):
    return mlflow.pyfunc.load_model(CHAMPION)


@pytest.fixture
def unlabelled(tmp_path, shared_dir):
    """An X-format file of real products, as the challenge's X_test would be."""
    products = data.read_products(shared_dir / f"{data.X_FILE}.gz").sample(250, random_state=3)
    raw = pd.read_csv(shared_dir / f"{data.X_FILE}.gz", index_col=0).loc[products.index]
    path = tmp_path / "X_test_update.csv.gz"
    raw.to_csv(path)
    return path, raw


def test_writes_y_test_in_the_challenge_format(model, unlabelled, tmp_path):
    path, raw = unlabelled
    counts = predict.predict_file(model, path, tmp_path / "y_test.csv", chunk_size=64)
    assert counts == {"written": 250, "skipped": 0}
    lines = (tmp_path / "y_test.csv").read_text().splitlines()
    assert lines[0] == ",prdtypecode"
    written = pd.read_csv(tmp_path / "y_test.csv", index_col=0)
    assert list(written.index) == list(raw.index)
    assert written["prdtypecode"].dtype == "int64"
    expected = model.predict(raw[["designation", "description"]])["prdtypecode"]
    assert (written["prdtypecode"].to_numpy() == expected.to_numpy()).all()


def test_chunk_size_does_not_change_the_output(model, unlabelled, tmp_path):
    path, _ = unlabelled
    predict.predict_file(model, path, tmp_path / "one.csv", chunk_size=10_000)
    predict.predict_file(model, path, tmp_path / "many.csv", chunk_size=7)
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "many.csv").read_text()


def write_bad_file(path):
    with gzip.open(path, "wb") as handle:
        handle.write(b",designation,description,productid,imageid\n")
        handle.write(b"10,Jeu PS4 FIFA 19,,1,2\n")
        handle.write(b"11,Caf\xe9 moulu bio,,3,4\n")       # latin-1 byte: not UTF-8
        handle.write(b"12,,Une description seule,5,6\n")   # no designation
        handle.write("13,Piscine tubulaire ronde,\"<b>300 cm</b>\",7,8\n".encode())


def test_bad_rows_are_named_and_nothing_is_written(model, tmp_path):
    write_bad_file(tmp_path / "bad.csv.gz")
    (tmp_path / "y_test.csv").write_text("previous\n")
    with pytest.raises(predict.BadRowsError, match=r"data row 2 \(index 11\): non-UTF-8 bytes in designation"):
        predict.predict_file(model, tmp_path / "bad.csv.gz", tmp_path / "y_test.csv")
    assert (tmp_path / "y_test.csv").read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".y_test")] == []


def test_bad_rows_can_be_skipped(model, tmp_path, capsys):
    write_bad_file(tmp_path / "bad.csv.gz")
    counts = predict.predict_file(model, tmp_path / "bad.csv.gz", tmp_path / "y_test.csv", skip_bad_rows=True)
    assert counts == {"written": 2, "skipped": 2}
    assert list(pd.read_csv(tmp_path / "y_test.csv", index_col=0).index) == [10, 13]
    assert "skipped index 12: empty designation" in capsys.readouterr().err


def test_command_line(champion_store, tmp_path, capsys):
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=40)
    products.to_csv(tmp_path / "X.csv")
    assert predict.main([str(tmp_path / "X.csv"), "--output", str(tmp_path / "out" / "y_test.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "y_test.csv", index_col=0)) == 40
    products.drop(columns="designation").to_csv(tmp_path / "nodesignation.csv")
    assert predict.main([str(tmp_path / "nodesignation.csv"), "--output", str(tmp_path / "y.csv")]) == 2
    assert "has no ['designation'] column" in capsys.readouterr().err
    assert predict.main([str(tmp_path / "X.csv"), "--model-uri", "models:/nope@champion"]) == 2
    assert "cannot load model models:/nope@champion" in capsys.readouterr().err


def test_a_chunk_size_under_one_is_one_line_naming_the_flag(tmp_path):
    """Finding 15 of the fourth round: `--chunk-size 0` said `cannot convert float NaN to integer`."""
    import subprocess
    import sys

    from rakuten import PROJECT_ROOT

    done = subprocess.run([sys.executable, "-m", "rakuten.predict", str(tmp_path / "X.csv"), "--chunk-size", "0",
                           "--output", str(tmp_path / "y.csv")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and not (tmp_path / "y.csv").exists()
    assert done.stderr.strip().splitlines()[-1] == "python -m rakuten.predict: error: argument --chunk-size: 0 must be at least 1"
