"""Fault: an X file with a broken record (a quote never closed, a stray quote, a row with too many
fields). Expected: both engines of `rakuten.predict` give the same outcome: every row written, or
one line naming the first row that cannot be read, exit 2 and no y_test.csv; with
`--skip-bad-rows` the row is named and every other row written. Before, the Spark engine wrote 11
of 50 rows for an unclosed quote and exited 0."""

import csv

import pandas as pd
import pytest

from rakuten import data, predict

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

ENGINES = ("pandas", "spark")


@pytest.fixture(scope="module")
def fifty_lines(shared_dir) -> list[str]:
    """50 real products as CSV lines (header first), every field quoted only where needed."""
    products = data.read_products(shared_dir / f"{data.X_FILE}.gz").sample(50, random_state=11)
    products["description"] = products["description"].str.replace("\n", " ").str.replace('"', "'")
    products["designation"] = products["designation"].str.replace('"', "'")
    text = products[["designation", "description", "productid", "imageid"]].to_csv(quoting=csv.QUOTE_MINIMAL)
    return text.splitlines()


def broken_file(folder, lines: list[str], row: int, mend) -> tuple:
    """The file with data row `row` replaced by `mend(fields)`; its index."""
    fields = next(csv.reader([lines[row]]))
    out = [*lines[:row], mend(fields), *lines[row + 1:]]
    path = folder / "X.csv"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path, fields[0]


def quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def unclosed_quote(fields):
    return ",".join([fields[0], '"' + fields[1].replace(",", " "), *fields[2:]])


def stray_quote(fields):
    words = fields[1].replace(",", " ").split(" ")
    return ",".join([fields[0], " ".join([words[0], 'pouce"', *words[1:]]), quoted(fields[2]), *fields[3:]])


def too_many_fields(fields):
    return ",".join([fields[0], quoted(fields[1]), quoted(fields[2]), *fields[3:], "extra"])


def run(champion_store, path, output, engine, *extra) -> int:
    return predict.main([str(path), "--output", str(output), "--engine", engine, "--spark-master", "local[2]",
                         "--tracking-uri", champion_store, *extra])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mend,problem", [(unclosed_quote, "cannot be read"),
                                          (too_many_fields, "6 fields where the header has 5")])
def test_a_broken_record_stops_both_engines_naming_it(champion_store, fifty_lines, tmp_path, capsys, engine, mend,
                                                      problem, request):
    if engine == "spark":
        request.getfixturevalue("spark_available")
    path, index = broken_file(tmp_path, fifty_lines, 11, mend)
    assert run(champion_store, path, tmp_path / "y_test.csv", engine) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data row 11" in err[0] and problem in err[0], err
    assert not (tmp_path / "y_test.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".y_test")] == []


@pytest.mark.parametrize("engine", ENGINES)
def test_too_many_fields_can_be_skipped_and_is_named(champion_store, fifty_lines, tmp_path, capsys, engine, request):
    if engine == "spark":
        request.getfixturevalue("spark_available")
    path, index = broken_file(tmp_path, fifty_lines, 11, too_many_fields)
    assert run(champion_store, path, tmp_path / "y_test.csv", engine, "--skip-bad-rows") == 0
    captured = capsys.readouterr()
    assert f"skipped index {index}: 6 fields where the header has 5 (data row 11" in captured.err
    assert "wrote 49 predictions" in captured.out and "; 1 rows skipped)" in captured.out
    written = pd.read_csv(tmp_path / "y_test.csv", index_col=0, dtype={0: str})
    expected = [next(csv.reader([line]))[0] for line in fifty_lines[1:]]
    assert [str(i) for i in written.index] == [i for i in expected if i != index]


def test_a_stray_quote_is_read_the_same_by_both_engines(spark_available, champion_store, fifty_lines,  # noqa: F811
                                                        tmp_path):
    """A quote inside an unquoted field is part of the text (as pandas reads it): 50 rows, same output."""
    path, index = broken_file(tmp_path, fifty_lines, 11, stray_quote)
    for engine in ENGINES:
        assert run(champion_store, path, tmp_path / f"{engine}.csv", engine) == 0
    assert (tmp_path / "pandas.csv").read_text() == (tmp_path / "spark.csv").read_text()
    assert len((tmp_path / "spark.csv").read_text().splitlines()) == 51
    assert len(pd.read_csv(path, index_col=0)) == 50  # pandas' own parser agrees there are 50 records
