"""Write the challenge's `y_test.csv` from a registered model and an X-format file.

    python -m rakuten.predict X_test_update.csv --output y_test.csv
    python -m rakuten.predict X_test_update.csv.gz --model-uri models:/rakuten-text/3 --skip-bad-rows
    python -m rakuten.predict X_test.parquet --engine spark --spark-master local[*]

The engine decides how rows are spread, the model URI what they are scored with. `pandas` (the
default) reads the input in chunks, so memory stays flat whatever its size; `spark` spreads them over
a Spark session through `mlflow.pyfunc.spark_udf` (`rakuten.spark`). Either way the output (header
`,prdtypecode`, the input's index) is written to a temporary file and moved into place only when
every row has been predicted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from tqdm import tqdm

from rakuten import lifecycle, track
from rakuten.data import LABEL, DataError, has_surrogates

DEFAULT_MODEL_URI = "models:/rakuten-text@champion"
REQUIRED_COLUMNS = ("designation",)


class BadRowsError(DataError):
    """Rows that cannot be predicted (undecodable bytes, no designation)."""


def bad_rows(chunk: pd.DataFrame) -> pd.Series:
    """A reason per bad row (empty where the row is fine)."""
    reasons = pd.Series("", index=chunk.index, dtype=object)
    for column in ("designation", "description"):
        if column not in chunk.columns:
            continue
        # surrogateescape keeps undecodable bytes as lone surrogates: they mark non-UTF-8 rows
        undecodable = chunk[column].map(lambda text: isinstance(text, str) and has_surrogates(text))
        reasons[undecodable] += f"non-UTF-8 bytes in {column}; "
    reasons[chunk["designation"].isna()] += "empty designation; "
    return reasons.str.rstrip("; ")


def read_chunks(path: Path, chunk_size: int):
    """The X file (CSV, plain or .gz, or Parquet) in chunks of rows, index as in the file; checks
    the header first."""
    if path.suffix == ".parquet":
        yield from _parquet_chunks(path, chunk_size)
        return
    try:
        reader = pd.read_csv(
            path, index_col=0, chunksize=chunk_size, dtype={"designation": object, "description": object},
            encoding="utf-8", encoding_errors="surrogateescape",
        )
        for number, chunk in enumerate(reader):
            if number == 0:
                missing = [c for c in REQUIRED_COLUMNS if c not in chunk.columns]
                if missing:
                    raise DataError(f"{path} has no {missing} column (columns: {list(chunk.columns)})")
            yield chunk
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot read {path}: {error}") from error


def _parquet_chunks(path: Path, chunk_size: int):
    try:
        products = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if "designation" not in products.columns:
        raise DataError(f"{path} has no ['designation'] column (columns: {list(products.columns)})")
    for start in range(0, len(products), chunk_size):
        yield products.iloc[start:start + chunk_size]


@contextlib.contextmanager
def atomic_output(output_path: Path):
    """A text file that appears at `output_path` only once written whole (every engine's y_test.csv)."""
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=output_path.parent, prefix=".y_test.", suffix=".csv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(temporary, output_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def predict_file(
    model, input_path: Path, output_path: Path, chunk_size: int = 10_000, skip_bad_rows: bool = False
) -> dict[str, int]:
    """Predict every row of `input_path` into `output_path`; returns counts of rows written and skipped."""
    written = skipped = rows_seen = 0
    with atomic_output(output_path) as out, tqdm(desc="predicting", unit=" rows", disable=None) as progress:
        out.write(f",{LABEL}\n")
        for chunk in read_chunks(Path(input_path), chunk_size):
            reasons = bad_rows(chunk)
            bad = reasons != ""
            if bad.any():
                first = reasons[bad].index[0]
                position = rows_seen + int(bad.to_numpy().argmax()) + 1
                if not skip_bad_rows:
                    raise BadRowsError(
                        f"{input_path}: data row {position} (index {first}): {reasons[first]}"
                        f" ({int(bad.sum())} bad rows in this chunk; --skip-bad-rows to skip them)"
                    )
                for index, reason in reasons[bad].items():
                    print(f"skipped index {index}: {reason}", file=sys.stderr)
                skipped += int(bad.sum())
            rows_seen += len(chunk)
            good = chunk[~bad]
            if len(good):
                columns = [c for c in ("designation", "description") if c in good.columns]
                predicted = model.predict(good[columns])[LABEL]
                predicted.to_csv(out, header=False)
                written += len(good)
            progress.update(len(chunk))
    return {"written": written, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write y_test.csv (,prdtypecode) for an X-format CSV.")
    parser.add_argument("input", type=Path,
                        help="X-format CSV (,designation,description,productid,imageid), plain or .gz, or Parquet")
    parser.add_argument("--output", type=Path, default=Path("y_test.csv"))
    parser.add_argument("--model-uri", default=DEFAULT_MODEL_URI)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--skip-bad-rows", action="store_true", help="report bad rows and leave them out")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else ./mlflow.db of the repo")
    parser.add_argument("--engine", choices=["pandas", "spark"], default="pandas",
                        help="how rows are spread: pandas chunks in this process, or a Spark session")
    parser.add_argument("--spark-master", default="local[*]", help="Spark master URL (engine spark)")
    parser.add_argument("-v", "--verbose", action="store_true", help="MLflow's own console output too")
    args = parser.parse_args(argv)
    track.set_console(verbose=args.verbose)
    lifecycle.exit_on_sigterm()  # the partial output is removed, as on Ctrl-C
    try:
        mlflow.set_tracking_uri(track.resolve_tracking_uri(args.tracking_uri))
        if not args.input.is_file():
            raise DataError(f"input file not found: {args.input}")
        if args.engine == "spark":
            from rakuten import spark

            counts = spark.predict_file(args.model_uri, args.input, args.output, args.spark_master,
                                        args.skip_bad_rows)
        else:
            counts = predict_file(load_model(args.model_uri), args.input, args.output, args.chunk_size,
                                  args.skip_bad_rows)
    except (DataError, track.TrackingError) as error:
        print(f"error: {track.one_line(error)}", file=sys.stderr)
        return 2
    print(f"wrote {counts['written']} predictions to {args.output} ({counts['skipped']} rows skipped)")
    return 0


def load_model(uri: str):
    try:
        return mlflow.pyfunc.load_model(uri)
    except Exception as error:  # MLflow raises several types for a bad URI or an unreachable store
        raise track.TrackingError(f"cannot load model {uri}: {track.one_line(error)}") from error


if __name__ == "__main__":
    sys.exit(main())
