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
import sys
import time
from pathlib import Path

from rakuten import lifecycle, tracking
from rakuten.cli import at_least_one, command, load_model, open_store, store_options
from rakuten.batch import BadRowsError, Tally, atomic_output, check_output, count_records, read_rows  # noqa: F401 - BadRowsError: users catch it
from rakuten.data import LABEL, DataError
from rakuten.progress import Progress

DEFAULT_MODEL_URI = "models:/rakuten-text@champion"
FIRST_STEP, SECONDS_PER_STEP = 200, 5  # rows scored between progress updates: about 5 s of work (a slow model)


def predict_file(
    model, input_path: Path, output_path: Path, chunk_size: int = 10_000, skip_bad_rows: bool = False
) -> dict[str, int]:
    """Predict every row of `input_path` into `output_path`; returns counts of rows written and skipped."""
    written = 0
    tally = Tally()
    total = count_records(Path(input_path))  # the time estimate: a slow model takes minutes
    with atomic_output(output_path, input_path) as out, Progress(total, "rows", "predicting") as progress:
        out.write(f",{LABEL}\n")
        step = min(chunk_size, FIRST_STEP)
        for chunk in read_rows(Path(input_path), chunk_size, skip_bad_rows, tally):
            start = 0
            while start < len(chunk):
                rows = chunk.iloc[start:start + step]
                started = time.perf_counter()
                model.predict(rows)[LABEL].to_csv(out, header=False)
                written, start = written + len(rows), start + len(rows)
                progress.update(len(rows))
                rate = len(rows) / max(time.perf_counter() - started, 1e-6)
                step = int(min(chunk_size, max(FIRST_STEP, rate * SECONDS_PER_STEP)))
    if written + tally.skipped != tally.seen:  # a guard: every record is written or named
        raise DataError(f"{input_path}: {tally.seen} rows read, {written} written, {tally.skipped} skipped")
    return {"written": written, "skipped": tally.skipped}


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(parents=[store_options(DEFAULT_MODEL_URI)], prog="python -m rakuten.predict",
                                     description="Write y_test.csv (,prdtypecode) for an X-format CSV.")
    parser.add_argument("input", type=Path,
                        help="X-format CSV (,designation,description,productid,imageid), plain or .gz, or Parquet")
    parser.add_argument("--output", type=Path, default=Path("y_test.csv"))
    parser.add_argument("--chunk-size", type=at_least_one, default=10_000, help="rows read and predicted at a time")
    parser.add_argument("--skip-bad-rows", action="store_true", help="report bad rows and leave them out")
    parser.add_argument("--engine", choices=["pandas", "spark"], default="pandas",
                        help="how rows are spread: pandas chunks in this process, or a Spark session")
    parser.add_argument("--spark-master", default="local[*]", help="Spark master URL (engine spark)")
    args = parser.parse_args(argv)
    tracking.set_console(verbose=args.verbose)
    lifecycle.exit_on_sigterm()  # the partial output is removed, as on Ctrl-C
    if not args.input.is_file():
        raise DataError(f"input file not found (or not a regular file): {args.input}")
    check_output(args.input, args.output)
    open_store(args.tracking_uri)
    started = time.perf_counter()
    if args.engine == "spark":
        from rakuten import spark

        counts = spark.predict_file(args.model_uri, args.input, args.output, args.spark_master, args.skip_bad_rows)
    else:
        counts = predict_file(load_model(args.model_uri), args.input, args.output, args.chunk_size,
                              args.skip_bad_rows)
    seconds = time.perf_counter() - started
    print(f"wrote {counts['written']:,} predictions to {args.output} in {seconds:.1f} s "
          f"({counts['written'] / max(seconds, 1e-9):,.0f} rows/s, {args.engine} engine; {counts['skipped']} rows skipped)")
    return 0


if __name__ == "__main__":
    from rakuten.features.allocator import keep_freed_memory

    keep_freed_memory()  # each batch's network pass reuses the memory the last one freed (not in `main`: tests call it)
    sys.exit(main())
