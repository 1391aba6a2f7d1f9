"""The Spark engine of `rakuten.predict`: rows spread over a Spark session, scored by the model
through `mlflow.pyfunc.spark_udf` (the same pyfunc as everywhere, not a copy of its code).

Reads the challenge's X format (CSV, plain or .gz, or Parquet) with the pandas engine's reader and
writes the same `y_test.csv`: header `,prdtypecode`, the input's index, in the input's order, moved
into place only when complete, and only when Spark scored every row it was given.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rakuten.batch import Tally, atomic_output, read_rows
from rakuten.data import LABEL, DataError

INDEX = "_index"
ROW = "_row"
ROW_GROUP = 20_000  # rows per Parquet row group: Spark's unit of parallel reading
ARROW_BATCH = 20_000


def _require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        raise DataError("--engine spark needs PySpark: pip install -e '.[spark]'") from error


def session(master: str = "local[*]"):
    """A Spark session bound to 127.0.0.1, its Python workers on this interpreter.

    Spark runs a Python worker per core already, so each scores its batches alone
    (`RAKUTEN_PREDICT_WORKERS=1`: in local mode the workers inherit this process's environment, on
    a cluster `spark.executorEnv`). Arrow batches of `ARROW_BATCH` rows keep the pyfunc's fixed cost
    per call small. Partitions are Spark's default for files (about one per core): in local mode
    `spark_udf` loads the model once per partition, so more of them cost loads, not speed."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["RAKUTEN_PREDICT_WORKERS"] = "1"
    _require_pyspark()
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName("rakuten-predict")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.executorEnv.RAKUTEN_PREDICT_WORKERS", "1")
            .config("spark.ui.enabled", "false").config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH))
            .getOrCreate())


def stage(input_path: Path, folder: Path, skip_bad_rows: bool, chunk_size: int = 50_000) -> tuple[Tally, int]:
    """The input's predictable rows as Parquet in `folder`, read by the same reader as the pandas
    engine (`rakuten.batch`): both engines agree on every record, and none is lost to a CSV
    dialect. Each row keeps its `_index` (as in the file) and `_row` (its position)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tally, position, writer = Tally(), 0, None
    try:
        for chunk in read_rows(input_path, chunk_size, skip_bad_rows, tally):
            table = pa.table({INDEX: chunk.index.astype(str).tolist(),
                              ROW: range(position, position + len(chunk)),
                              "designation": chunk["designation"].tolist(),
                              "description": chunk["description"].tolist()})
            position += len(chunk)
            if writer is None:
                writer = pq.ParquetWriter(folder / "rows.parquet", table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    return tally, position


def predict_file(model_uri: str, input_path: Path, output_path: Path, master: str = "local[*]",
                 skip_bad_rows: bool = False) -> dict[str, int]:
    """Score every row of `input_path` on Spark into `output_path`; counts of rows written and skipped."""
    import tempfile

    import mlflow.pyfunc

    _require_pyspark()
    scored = None
    with tempfile.TemporaryDirectory(prefix="rakuten-spark-") as folder:
        tally, staged = stage(Path(input_path), Path(folder), skip_bad_rows)  # bad input fails before Spark starts
        if staged:
            spark = session(master)
            try:
                products = spark.read.parquet(str(Path(folder) / "rows.parquet"))
                score = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", result_type="long")
                scored = (products.withColumn(LABEL, score("designation", "description"))
                          .select(INDEX, ROW, LABEL).toPandas().sort_values(ROW))
            finally:
                spark.stop()
    written = 0 if scored is None else len(scored)
    if written != staged or written + tally.skipped != tally.seen:
        raise DataError(f"{input_path}: {tally.seen} rows read, {tally.skipped} skipped, but Spark scored {written}: "
                        "nothing written")
    with atomic_output(output_path, input_path) as out:
        out.write(f",{LABEL}\n")
        if scored is not None:
            scored.set_index(INDEX)[[LABEL]].to_csv(out, header=False)
    return {"written": written, "skipped": tally.skipped}
