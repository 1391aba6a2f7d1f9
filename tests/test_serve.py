"""`mlflow models serve` on the champion: raw rows over HTTP, prdtypecodes back, 4xx on bad payloads."""

import os
import signal
import socket
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

ROWS = {"columns": ["designation", "description"],
        "data": [["Piscine tubulaire ronde 300 cm", None], ["Jeu PS4 FIFA 19", "<b>jeu</b> de foot"]]}


@pytest.fixture(scope="module")
def server(champion_store, tmp_path_factory):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [mlflow_cli, "models", "serve", "-m", "models:/rakuten-text@champion", "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            env={**os.environ, "MLFLOW_TRACKING_URI": champion_store,  # the server runs `uvicorn` from PATH
                 "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
            stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"server did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_served_champion_answers_with_prdtypecodes(server, champion_store):
    answer = requests.post(f"{server}/invocations", json={"dataframe_split": ROWS}, timeout=30)
    assert answer.status_code == 200
    codes = [p["prdtypecode"] for p in answer.json()["predictions"]]
    local = mlflow.pyfunc.load_model("models:/rakuten-text@champion")
    expected = local.predict(pd.DataFrame(ROWS["data"], columns=ROWS["columns"]))["prdtypecode"].tolist()
    assert codes == expected and all(isinstance(c, int) for c in codes)


def test_bad_payloads_get_a_4xx_with_a_message(server):
    no_rows = requests.post(f"{server}/invocations", json={"rows": []}, timeout=30)
    assert 400 <= no_rows.status_code < 500 and "dataframe_split" in no_rows.json()["message"]
    no_designation = requests.post(
        f"{server}/invocations", json={"dataframe_records": [{"description": "x"}]}, timeout=30)
    assert 400 <= no_designation.status_code < 500 and "designation" in no_designation.json()["message"]
    bad_top_k = requests.post(
        f"{server}/invocations", json={"dataframe_split": ROWS, "params": {"top_k": "three"}}, timeout=30)
    assert 400 <= bad_top_k.status_code < 500 and "top_k" in bad_top_k.json()["message"]


def test_served_default_champion_answers_with_probabilities(server):
    answer = requests.post(f"{server}/invocations", timeout=30,
                           json={"dataframe_split": ROWS, "params": {"return_proba": True, "top_k": 2}})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert all(0 < p["probability"] <= 1 and len(p["top_k"]) == 2 for p in predictions)


def test_every_request_is_predicted_on_the_one_thread_the_server_keeps_for_it(champion_store):
    """Two threads running torch take turns on 2 cores (`rakuten.serve._serving`): MLflow's app predicts
    in the loop's default executor, which the server makes a single thread."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import uvicorn

    from rakuten.serve import _serving, build_app

    mlflow.set_tracking_uri(champion_store)
    app = build_app(mlflow.pyfunc.load_model("models:/rakuten-text@champion"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    before = {thread.ident for thread in threading.enumerate()}
    predicting = ThreadPoolExecutor(1, thread_name_prefix="rakuten-predict")
    serving = threading.Thread(target=asyncio.run, args=(_serving(server, predicting),), daemon=True)
    serving.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and serving.is_alive(), "the server did not start within 30 s"
            time.sleep(0.1)
        with ThreadPoolExecutor(4) as clients:  # requests at once: they wait for the one thread
            answers = list(clients.map(lambda _: requests.post(
                f"http://127.0.0.1:{port}/invocations", json={"dataframe_split": ROWS}, timeout=30), range(8)))
        assert [answer.status_code for answer in answers] == [200] * 8
        started = [thread.name for thread in threading.enumerate() if thread.ident not in before]
        assert [name for name in started if name.startswith("rakuten-predict")] == ["rakuten-predict_0"]
        assert not [name for name in started if name.startswith("asyncio_")]  # the loop's own executor
    finally:
        server.should_exit = True
        serving.join(timeout=30)
        predicting.shutdown()
