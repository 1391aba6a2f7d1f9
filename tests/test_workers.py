"""Batch scoring spread over worker processes gives what one process gives."""

import numpy as np
import pandas as pd
import pytest

from rakuten import data, workers
from rakuten.models import pipeline_from_config
from tests.helpers.stores import SAMPLE_DIR, config


@pytest.fixture(scope="module")
def fitted():
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=800)
    return pipeline_from_config(config()).fit(products, labels), products


def test_chunks_on_two_workers_equal_one_process(fitted, monkeypatch):
    pipeline, products = fitted
    monkeypatch.setenv(workers.WORKERS_ENV, "2")
    monkeypatch.setattr(workers, "MIN_ROWS_PER_WORKER", 100)
    scorer = workers.ChunkedPipeline(pipeline)
    rows = pd.concat([products] * 2, ignore_index=True)
    assert np.array_equal(scorer.predict(rows), pipeline.predict(rows))
    assert np.allclose(scorer.predict_proba(rows), pipeline.predict_proba(rows))
    assert scorer._pool is not None  # the rows did go to the workers


def test_small_batches_and_one_worker_stay_in_process(fitted, monkeypatch):
    pipeline, products = fitted
    scorer = workers.ChunkedPipeline(pipeline)
    assert np.array_equal(scorer.predict(products.head(3)), pipeline.predict(products.head(3)))
    monkeypatch.setenv(workers.WORKERS_ENV, "1")
    monkeypatch.setattr(workers, "MIN_ROWS_PER_WORKER", 10)
    scorer.predict(products)
    assert scorer._pool is None


def test_a_bad_worker_count_is_named(monkeypatch):
    monkeypatch.setenv(workers.WORKERS_ENV, "all")
    with pytest.raises(ValueError, match="RAKUTEN_PREDICT_WORKERS"):
        workers.worker_count()
