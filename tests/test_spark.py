"""`rakuten.predict --engine spark`: real Spark (local), the champion through spark_udf, the same
y_test.csv as the pandas engine."""

import os

import pandas as pd
import pytest

from rakuten import data, predict

pytestmark = pytest.mark.service  # starts PostgreSQL, an mlflow server, Spark or Chromium


@pytest.fixture(scope="module")
def real_rows(shared_dir, tmp_path_factory):
    """300 real products as the challenge's X_test would hold them (CSV.gz and Parquet)."""
    folder = tmp_path_factory.mktemp("spark-input")
    products = data.read_products(shared_dir / f"{data.X_FILE}.gz").sample(300, random_state=5)
    raw = pd.read_csv(shared_dir / f"{data.X_FILE}.gz", index_col=0).loc[products.index]
    raw.to_csv(folder / "X_test.csv.gz")
    raw.to_parquet(folder / "X_test.parquet")
    return folder, raw


def run_predict(champion_store, *args) -> int:
    return predict.main([*args, "--tracking-uri", champion_store])


@pytest.mark.parametrize("name", ["X_test.csv.gz", "X_test.parquet"])
def test_spark_engine_writes_what_the_pandas_engine_writes(spark_available, champion_store, real_rows, tmp_path,
                                                           name):
    folder, raw = real_rows
    assert run_predict(champion_store, str(folder / name), "--output", str(tmp_path / "pandas.csv")) == 0
    assert run_predict(champion_store, str(folder / name), "--output", str(tmp_path / "spark.csv"),
                       "--engine", "spark", "--spark-master", "local[2]") == 0
    pandas_text = (tmp_path / "pandas.csv").read_text()
    spark_text = (tmp_path / "spark.csv").read_text()
    assert spark_text == pandas_text
    assert spark_text.splitlines()[0] == ",prdtypecode"
    written = pd.read_csv(tmp_path / "spark.csv", index_col=0)
    assert written.index.tolist() == raw.index.tolist() and written["prdtypecode"].dtype == "int64"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".y_test")] == []


def test_spark_engine_names_a_row_without_designation(spark_available, champion_store, real_rows, tmp_path, capsys):
    folder, raw = real_rows
    broken = raw.copy()
    broken.loc[broken.index[7], "designation"] = None
    broken.to_csv(tmp_path / "X.csv")
    assert run_predict(champion_store, str(tmp_path / "X.csv"), "--output", str(tmp_path / "y.csv"),
                       "--engine", "spark", "--spark-master", "local[2]") == 2
    assert f"data row 8 (index {raw.index[7]}): empty designation" in capsys.readouterr().err  # as the pandas engine says it
    assert not (tmp_path / "y.csv").exists()
