"""What every batch-scoring engine reads and writes: X-format rows in, `y_test.csv` out.

Both engines of `rakuten.predict` (pandas, Spark) read their input here, so they agree on what a
record is, which rows are bad, and what each bad row is called: a CSV is parsed by Python's `csv`
module (quoted fields may span lines), every record is counted, and a record that cannot be read
(a quote never closed, more or fewer fields than the header) is named by its data row and line.
Nothing is dropped silently: a bad row stops the job, or with `skip_bad_rows` is named and left out.
The output appears only once written whole (`atomic_output`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rakuten.data import DataError, has_surrogates

REQUIRED_COLUMNS = ("designation",)
TEXT_COLUMNS = ("designation", "description")
csv.field_size_limit(64 * 1024 * 1024)  # one description may be long; a runaway quote is caught below


class BadRowsError(DataError):
    """Rows that cannot be read or predicted (a broken record, undecodable bytes, no designation)."""


@dataclass
class Tally:
    """Records seen in the input, and those left out (with `skip_bad_rows`)."""

    seen: int = 0
    skipped: int = 0
    skipped_rows: list[str] = field(default_factory=list)


def row_problem(values: dict[str, str | None]) -> str:
    """Why a parsed row cannot be predicted ('' when it can)."""
    reasons = [f"non-UTF-8 bytes in {column}" for column in TEXT_COLUMNS
               if isinstance(values.get(column), str) and has_surrogates(values[column])]
    if not values.get("designation"):
        reasons.append("empty designation")
    return "; ".join(reasons)


def read_rows(path: Path, chunk_size: int = 10_000, skip_bad_rows: bool = False,
              tally: Tally | None = None) -> Iterator[pd.DataFrame]:
    """The input's predictable rows in chunks: `designation` and `description` as strings,
    indexed by the input's own index (as text). A bad row raises `BadRowsError` naming it, or,
    with `skip_bad_rows`, is reported on stderr and counted in `tally`."""
    tally = tally if tally is not None else Tally()
    records = _parquet_records(path) if path.suffix == ".parquet" else _csv_records(path)
    index, texts = [], {column: [] for column in TEXT_COLUMNS}
    for number, line, key, values, broken in records:
        tally.seen += 1
        problem = broken or row_problem(values)
        if problem:
            _bad(path, number, line, key, problem, skip_bad_rows, tally)
            continue
        index.append(key)
        for column in TEXT_COLUMNS:
            texts[column].append(values.get(column) or "")
        if len(index) >= chunk_size:
            yield _frame(index, texts)
            index, texts = [], {column: [] for column in TEXT_COLUMNS}
    if index:
        yield _frame(index, texts)


def count_records(path: Path) -> int | None:
    """How many records the input holds (for a progress bar with a time estimate); None when it
    cannot be told cheaply (a broken file: the reader names the problem)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        with _open_text(path) as handle:
            return max(sum(1 for record in csv.reader(handle) if record) - 1, 0)
    except (OSError, csv.Error, EOFError, ValueError, DataError):
        return None


def _frame(index: list, texts: dict) -> pd.DataFrame:
    return pd.DataFrame(texts, index=pd.Index(index, dtype=object), dtype=object)


def _bad(path: Path, number: int, line: int | None, key: str, problem: str, skip: bool, tally: Tally) -> None:
    at_line = f", line {line} of the file" if line else ""
    if not skip:
        raise BadRowsError(f"{path}: data row {number} (index {key}): {problem}{at_line} "
                           "(--skip-bad-rows to skip such rows)")
    print(f"skipped index {key}: {problem} (data row {number}{at_line})", file=sys.stderr)
    tally.skipped += 1
    tally.skipped_rows.append(key)


def _open_text(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        raw = opener(path, "rb")
        raw.peek(1) if hasattr(raw, "peek") else None
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_records(path: Path):
    """(data row, line, index, values, why broken) per record of an X-format CSV, plain or .gz."""
    with _open_text(path) as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty: expected the header ,designation,description,productid,imageid") from None
        except (csv.Error, OSError, EOFError) as error:
            raise DataError(f"cannot read {path}: {error}") from error
        _check_header(path, header[1:])
        number = 0
        while True:
            line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, OSError, EOFError) as error:
                number += 1
                # the rest of the file cannot be told apart from this record: no skipping past it
                raise BadRowsError(f"{path}: data row {number} (line {line}) cannot be read: {error}"
                                   + (" (a quote opened and never closed?)" if "end of data" in str(error)
                                      or "expected after" in str(error) else "")) from error
            if not record:  # a blank line is no record
                continue
            number += 1
            if len(record) != len(header):
                yield number, line, record[0], {}, f"{len(record)} fields where the header has {len(header)}"
                continue
            yield number, line, record[0], dict(zip(header[1:], record[1:])), ""


def _parquet_records(path: Path):
    try:
        products = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    _check_header(path, list(products.columns))
    columns = [c for c in TEXT_COLUMNS if c in products.columns]
    for number, (key, *values) in enumerate(products[columns].itertuples(name=None), 1):
        texts = {c: (v if isinstance(v, str) else None) for c, v in zip(columns, values)}
        yield number, None, str(key), texts, ""


def _check_header(path: Path, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{path} has no {missing} column (columns: {list(columns)})")


def check_output(input_path: Path, output_path: Path) -> None:
    """One line when the output would replace the input (the same file, links resolved)."""
    if Path(output_path).exists() and os.path.samefile(input_path, output_path):
        raise DataError(f"--output {output_path} is the input file {input_path}: name another file to write")


@contextlib.contextmanager
def atomic_output(output_path: Path, input_path: Path | None = None):
    """A text file that appears at `output_path` only once written whole (every engine's y_test.csv),
    with the mode the user's umask gives new files. A folder that cannot be written, an output path
    that is a folder, or one that is the input file itself (links resolved), is one line naming it."""
    output_path = Path(output_path)
    if input_path is not None:
        check_output(input_path, output_path)
    if output_path.is_dir():
        raise DataError(f"--output {output_path} is a folder: name the file to write (e.g. {output_path}/y_test.csv)")
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=output_path.parent, prefix=".y_test.", suffix=".csv")
    except OSError as error:
        raise DataError(f"cannot write {output_path}: {error.strerror} ({output_path.parent})") from error
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            yield out
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as any file the user writes (mkstemp makes it 0600)
        os.replace(temporary, output_path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise DataError(f"cannot write {output_path}: {error.strerror or error}") from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
