"""Batch scoring on every core: a big batch is cut into one chunk per worker process.

Text features are Python tokenising that holds the GIL, so threads would not help. Each worker
process receives the fitted pipeline once, when the pool starts, and afterwards only rows: a
batch costs its rows' transfer, not the model's. Batches under `MIN_ROWS_PER_WORKER` rows per
worker are scored in the calling process, so that one row stays a few milliseconds.

`RAKUTEN_PREDICT_WORKERS` sets the number of workers (default: the cores this process may use;
1 scores everything in the calling process, as Spark's Python workers do).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from functools import partial

import numpy as np
import pandas as pd

WORKERS_ENV = "RAKUTEN_PREDICT_WORKERS"
MIN_ROWS_PER_WORKER = 2000
IDLE_SECONDS = 300  # an idle worker exits after this long; the next big batch starts it again
log = logging.getLogger("rakuten.workers")

_pipeline = None  # in a worker process: the pipeline it scores with


def worker_count() -> int:
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a whole number of processes, got {configured!r}") from None
    return len(os.sched_getaffinity(0))


def _receive(pipeline) -> None:
    global _pipeline
    _pipeline = pipeline


def _call(method: str, rows: pd.DataFrame, pipeline=None) -> np.ndarray:
    """`pipeline.method(rows)` (in a worker: the pipeline it received), without scikit-learn's
    argument and finiteness checks: the rows were checked against the model's signature and the
    matrices are the features' own; the checks are a tenth of a one-row prediction."""
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return getattr(pipeline if pipeline is not None else _pipeline, method)(rows)


class ChunkedPipeline:
    """`predict` and `predict_proba` of a fitted pipeline, big batches spread over processes."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._pool = None
        self._lock = threading.Lock()

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self._run("predict", rows)

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return self._run("predict_proba", rows)

    def _run(self, method: str, rows: pd.DataFrame) -> np.ndarray:
        workers = min(worker_count(), len(rows) // MIN_ROWS_PER_WORKER)
        if workers < 2:
            return _call(method, rows, self.pipeline)
        bounds = np.linspace(0, len(rows), workers + 1).astype(int)
        chunks = [rows.iloc[start:end] for start, end in zip(bounds[:-1], bounds[1:])]
        try:
            return np.concatenate(list(self._executor().map(partial(_call, method), chunks)))
        except BrokenProcessPool:  # a worker died (memory, a kill): score here, start afresh next time
            log.warning("a scoring worker process died; this batch is scored in the calling process")
            self._pool = None
            return _call(method, rows, self.pipeline)

    def _executor(self):
        """joblib's loky executor: its workers start fresh (a fork of a threaded server may
        deadlock) without running the caller's `__main__` again (a script with no main guard
        would, under multiprocessing's spawn)."""
        from joblib.externals.loky import ProcessPoolExecutor

        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(worker_count(), timeout=IDLE_SECONDS, initializer=_receive,
                                                 initargs=(self.pipeline,))
            return self._pool
