"""Fault: a model is given no rows, or a malformed payload over HTTP.

Expected: zero rows in, zero rows out (an empty `prdtypecode` frame; the server answers 200 with
an empty list); a malformed payload gets a 4xx with a message, and no answer carries a stack
trace (it would show the server's paths)."""

import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import requests

from rakuten import PROJECT_ROOT
from tests.helpers.services import free_port, stop, wait_for


@pytest.fixture(scope="module")
def server(champion_store, tmp_path_factory):
    """`python -m rakuten.serve` on the champion."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "rakuten.serve", "--port", str(port)], cwd=PROJECT_ROOT,
                                   env={**os.environ, "MLFLOW_TRACKING_URI": champion_store}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def model(champion_store):
    return mlflow.pyfunc.load_model("models:/rakuten-text@champion")


def test_empty_frame_in_empty_frame_out(model):
    result = model.predict(pd.DataFrame({"designation": pd.Series([], dtype=str),
                                         "description": pd.Series([], dtype=str)}))
    assert list(result.columns) == ["prdtypecode"] and len(result) == 0
    assert result["prdtypecode"].dtype == "int64"


def test_served_empty_rows_get_an_empty_list(server):
    answer = requests.post(f"{server}/invocations", timeout=30,
                           json={"dataframe_split": {"columns": ["designation", "description"], "data": []}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": []}


@pytest.mark.parametrize("payload,content_type", [
    ('{"data": []}', "application/json"),
    ('{"dataframe_split": {"columns": ["designation"], "data": "not rows"}}', "application/json"),
    ('{"dataframe_records": [{"designation": 12}]}', "application/json"),
    ('{"dataframe_records": [{"designation": null}]}', "application/json"),
    ('{"dataframe_split": ', "application/json"),
    ('{"inputs": {"designation": [[1, 2]]}}', "application/json"),
    ("designation\n\"unclosed", "text/csv"),
])
def test_malformed_payloads_get_a_message_and_no_stack_trace(server, payload, content_type):
    answer = requests.post(f"{server}/invocations", data=payload, headers={"Content-Type": content_type},
                           timeout=30)
    assert answer.status_code < 500 or answer.status_code == 500 and "message" in answer.json()
    assert "Traceback" not in answer.text and "stack_trace" not in answer.text and "site-packages" not in answer.text
    if answer.status_code != 200:
        assert answer.json()["message"]
