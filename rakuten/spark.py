"""The Spark engine of `rakuten.predict`: rows spread over a Spark session, scored by the model
through `mlflow.pyfunc.spark_udf` (the same pyfunc as everywhere, not a copy of its code).

Reads the challenge's X format as CSV (plain or .gz; quoted fields may span lines) or Parquet, and
writes the same `y_test.csv` as the pandas engine: header `,prdtypecode`, the input's index, in the
input's order, moved into place only when complete.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rakuten.data import LABEL, DataError

INDEX = "_index"
ROW = "_row"


def session(master: str = "local[*]"):
    """A Spark session bound to 127.0.0.1, its Python workers on this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise DataError("--engine spark needs PySpark: pip install -e '.[spark]'") from error

    return (SparkSession.builder.master(master).appName("rakuten-predict")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            # Spark runs a Python worker per core already: each scores its batches alone
            .config("spark.executorEnv.RAKUTEN_PREDICT_WORKERS", "1")
            .config("spark.ui.enabled", "false").config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate())


def read_products(spark, path: Path):
    """The products of an X-format CSV or Parquet file with `_index` (as in the file) and `_row`
    (the input order)."""
    from pyspark.sql import functions as F

    if path.suffix == ".parquet":
        frame = spark.read.parquet(str(path))
        index = next((c for c in ("__index_level_0__", "index") if c in frame.columns), None)
        frame = frame.withColumn(ROW, F.monotonically_increasing_id())
        if index is None:  # a RangeIndex is not stored: the rows' positions are the index
            from pyspark.sql.window import Window

            frame = frame.withColumn(INDEX, (F.row_number().over(Window.orderBy(ROW)) - 1).cast("string"))
        else:
            frame = frame.withColumn(INDEX, F.col(index).cast("string"))
    else:
        frame = spark.read.csv(str(path), header=True, multiLine=True, escape='"', quote='"')
        frame = frame.withColumnRenamed(frame.columns[0], INDEX).withColumn(ROW, F.monotonically_increasing_id())
    if "designation" not in frame.columns:
        raise DataError(f"{path} has no ['designation'] column (columns: {frame.columns})")
    if "description" not in frame.columns:
        frame = frame.withColumn("description", F.lit(None).cast("string"))
    return frame


def predict_file(model_uri: str, input_path: Path, output_path: Path, master: str = "local[*]",
                 skip_bad_rows: bool = False) -> dict[str, int]:
    """Score every row of `input_path` on Spark into `output_path`; counts of rows written and skipped."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    spark = session(master)
    try:
        products = read_products(spark, Path(input_path))
        empty = products.filter(F.col("designation").isNull())
        skipped = empty.count()
        if skipped and not skip_bad_rows:
            first = empty.orderBy(ROW).first()
            raise DataError(f"{input_path}: index {first[INDEX]}: empty designation ({skipped} such rows; "
                            "--skip-bad-rows to skip them)")
        score = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", result_type="long")
        scored = (products.filter(F.col("designation").isNotNull())
                  .withColumn(LABEL, score(F.struct("designation", "description")))
                  .select(INDEX, ROW, LABEL).orderBy(ROW).toPandas())
    finally:
        spark.stop()
    from rakuten.predict import atomic_output

    with atomic_output(output_path) as out:
        scored.set_index(INDEX)[[LABEL]].rename_axis(None).to_csv(out)
    return {"written": len(scored), "skipped": int(skipped)}
