"""Whether a model version loads and predicts its own input example, and what a row costs it:
what the registry (`rakuten.registry`) checks before a version takes an alias, and measures at registration."""

from __future__ import annotations

import os
import time

import mlflow.pyfunc
from joblib import parallel_config

from rakuten.features.item_cache import CACHE_ENV
from rakuten.tracking import is_outage, muted, one_line
from rakuten.tracking.http import called_again_on_broken_reply

BATCH_ROWS = 64  # the batch `ms_per_row` is measured on


@called_again_on_broken_reply
def read_model(model_uri: str):
    """The pyfunc model at `model_uri`, read again when the store's reply broke off midway."""
    return mlflow.pyfunc.load_model(model_uri)


def load_problem(model_uri: str) -> str:
    """'' when the model at `model_uri` loads and predicts its own input example (a few rows of its
    test part, logged with it), else why not, in one line."""
    return check(model_uri)[0]


def check(model_uri: str, repeats: int = 5) -> tuple[str, float, float]:
    """(why the model at `model_uri` does not load and predict its input example, '' when it does;
    its median single-row latency and its cost per row in a batch of `BATCH_ROWS`, in milliseconds,
    after a warm-up). A store that does not answer while the model is read raises: that is no verdict."""
    nan = float("nan")
    training_cache = os.environ.pop(CACHE_ENV, None)  # measured as a served model runs: nothing cached,
    try:
        with muted(), parallel_config(n_jobs=None):  # in this process (not training's worker pool)
            model = read_model(model_uri)
            example = model.input_example
            if example is None:
                return "it has no input example to predict", nan, nan
            predicted = model.predict(example)
            if len(predicted) != len(example):
                return f"it predicted {len(predicted)} rows for {len(example)}", nan, nan
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                model.predict(example.head(1))
                seconds.append(time.perf_counter() - started)
            batch = example.iloc[[i % len(example) for i in range(BATCH_ROWS)]].reset_index(drop=True)
            started = time.perf_counter()
            model.predict(batch)
            row_cost = (time.perf_counter() - started) / BATCH_ROWS
        return "", 1000 * sorted(seconds)[len(seconds) // 2], 1000 * row_cost
    except Exception as error:  # noqa: BLE001 - whatever breaks a model, it is not promoted
        if is_outage(error):  # the store did not answer: nothing is known of the model (a champion keeps its alias)
            raise
        return one_line(error, 300), nan, nan
    finally:
        if training_cache is not None:
            os.environ[CACHE_ENV] = training_cache
