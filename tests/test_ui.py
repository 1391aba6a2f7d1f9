"""The MLflow UI as a person sees it: `python -m rakuten.ui` on a store holding two runs, its printed
link opened in a real headless Chromium."""

import pytest
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from rakuten import PROJECT_ROOT
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config, required_service_missing
from tests.helpers.services import free_port, stop

pytestmark = pytest.mark.service  # starts PostgreSQL, an mlflow server, Spark or Chromium


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        required_service_missing("Chromium is not installed (apt-get install chromium)")
    return found


def browse(browser: str, url: str, screenshot: Path) -> str:
    """The page's DOM once its scripts have run, and a screenshot of it."""
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,1000",
              "--virtual-time-budget=20000"]
    subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    return subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout


def test_ui_opens_on_one_datasets_training_runs_with_f1_and_the_key_hyperparameter(store, tmp_path, shared_dir):
    browser = chromium()
    run(config(SPLIT_ONLY, f"data.dir={shared_dir}", "data.max_rows=300", "register=false", "model=multinomialnb"))  # another dataset
    scores = [run(config(SPLIT_ONLY, "data.max_rows=400", "register=false", "model=linearsvc", "search=grid",
                         "search.grid_points=2", "search.cv=2")),  # a parent with 2 candidate children
              run(config(SPLIT_ONLY, "data.max_rows=400", "register=false", "model=complementnb"))]
    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        ui = subprocess.Popen([sys.executable, "-m", "rakuten.ui", "--port", str(port)], cwd=PROJECT_ROOT,
                              env={**os.environ, "MLFLOW_TRACKING_URI": store}, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 120
        while "MLflow UI: " not in log.read_text():
            assert ui.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        link = log.read_text().split("MLflow UI: ")[1].split()[0]
        assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=machine_learning" in link
        assert link.endswith("viewStateShareKey=runs-rakuten-sample"), link  # the newest run's dataset
        artifacts = Path(os.environ.get("RAKUTEN_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="rakuten-ui-"))
        artifacts.mkdir(parents=True, exist_ok=True)
        dom = browse(browser, link, artifacts / "ui_runs_table.png")
        print(f"screenshot: {artifacts / 'ui_runs_table.png'}")
    finally:
        stop(ui)
    assert "linearsvc-" in dom and "complementnb-" in dom, "the runs table is not what the page shows"
    assert "multinomialnb-" not in dom and "rakuten-full" not in dom, "another dataset's runs are in view"
    assert not re.search(r">grid-\d+<", dom), "search candidates are flattened into the table"
    assert "test_f1_weighted" in dom, "weighted F1 is not in view"
    assert "model.C" in dom and "model.alpha" in dom, "the key hyperparameters are not in view"
    assert "features.name" in dom and "resampler.name" in dom, "what the model reads and its resampler are not in view"
    assert "rakuten-sample" in dom, "the runs' dataset is not in view"
    shown = set(re.findall(r">(0\.\d+)<", dom))
    assert {str(score) for score in scores} <= shown, f"the runs' weighted F1 {scores} not among {shown}"
    assert all(len(str(score).split(".")[1]) <= 4 for score in scores), "scores are logged to 4 decimals"
    assert "Show more columns" not in dom or dom.index("test_f1_weighted") < dom.index("Show more columns")
