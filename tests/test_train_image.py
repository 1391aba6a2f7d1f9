"""Image and fusion models through `rakuten.train`, kept small for the CPU: a few dozen real
pictures of the shared data, small inputs, a few epochs."""

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from tests.helpers.stores import SPLIT_ONLY, config, requires_extra

requires_extra("tensorflow", "images")

from rakuten import data, data_pictures, logged_runs, recipes  # noqa: E402
from rakuten.features.network_input import dataset  # noqa: E402
from rakuten.train import run  # noqa: E402

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

SMALL = ("model.image_size=[48,48]", "model.gradcam_images=2", "model.batch_size=16", "augment=none")


def last_run():
    return mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]


def test_sequential_trains_logs_and_predicts_prdtypecodes(store, shared_dir):
    f1 = run(config(SPLIT_ONLY, "model=sequential", f"data.dir={shared_dir}", "data.max_rows=135", "model.epochs=2", "cv.folds=2",
                    *SMALL))
    logged = last_run()
    assert logged.info.status == "FINISHED" and logged.data.tags["modality"] == "image"
    assert logged.data.metrics["test_f1_weighted"] == f1
    cv = logged.data.metrics  # the network cross-validated over every row, beside its split
    assert cv["cv_folds"] == 2 and 0 <= cv["cv_f1_weighted_mean"] <= 1 and cv["cv_predict_rows_per_s"] > 0
    assert logged.data.metrics["images_found"] == 1713 and logged.data.metrics["images_missing"] > 80000
    history = MlflowClient().get_metric_history(logged.info.run_id, "epoch_val_loss")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in MlflowClient().list_artifacts(logged.info.run_id)}
    assert {"learning_curve.png", "confusion_matrix.png", "classification_report.json", "gradcam"} <= artifacts
    assert len(MlflowClient().list_artifacts(logged.info.run_id, "gradcam")) == 2
    champion = MlflowClient().get_model_version_by_alias("rakuten-image", "champion")
    assert champion.run_id == logged.info.run_id
    model = mlflow.pyfunc.load_model("models:/rakuten-image@champion")
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=135, seed=42)
    predicted = model.predict(frame[["image_path"]].head(10))["prdtypecode"]
    assert predicted.dtype == np.int64 and set(predicted) <= set(labels.unique())
    by_ids = model.predict(frame[["imageid", "productid"]].head(10),
                           params={"images_dir": str(shared_dir / "images" / "image_train")})
    assert by_ids["prdtypecode"].tolist() == predicted.tolist()
    # later tools (promote, rescoring) rebuild the same test part and get the logged score back
    parts = recipes.test_part(logged.info.run_id)
    assert parts.fingerprint == logged.data.tags["data_fingerprint"]
    assert logged_runs.score_model("models:/rakuten-image@champion", parts) == pytest.approx(f1, abs=1e-4)


def test_logged_model_scores_what_keras_scores_on_the_same_pictures(store, shared_dir):
    """The label-order guard: the pyfunc's accuracy on its own training pictures equals Keras's
    own evaluation of the same network on them, and predictions are prdtypecodes, not indices."""
    run(config(SPLIT_ONLY, "model=sequential", f"data.dir={shared_dir}", "data.max_rows=81", "data.test_size=27",
               "model.validation_size=27", "model.epochs=30", "model.patience=null", "model.learning_rate=0.002",
               "model.network.dropout=0.0", "model.network.dense_dropout=0.0", *SMALL))
    model = mlflow.pyfunc.load_model(f"runs:/{last_run().info.run_id}/model")
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=81, seed=42)
    train = data.split(frame, labels, 27, 42)
    fitted = data.split(train.X_train, train.y_train, 27, 42)  # the part the network was fitted on
    predicted = model.predict(fitted.X_train[["image_path"]])["prdtypecode"].to_numpy()
    pyfunc_accuracy = float((predicted == fitted.y_train.to_numpy()).mean())
    predictor = model.unwrap_python_model().predictor
    classes = predictor.classes
    targets = np.searchsorted(classes, fitted.y_train.to_numpy())
    network = predictor.model
    network.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, keras_accuracy = network.evaluate(
        dataset(fitted.X_train["image_path"], targets, reading={"image_size": (48, 48), "grayscale": True, "channels": 1},
                batch_size=16), verbose=0)
    assert pyfunc_accuracy == pytest.approx(keras_accuracy, abs=1e-6)
    assert pyfunc_accuracy > 0.5, "the network should fit its own 27 training pictures"
    assert set(predicted) <= set(classes) and predicted.max() > 26


def test_resnet50_without_weights_trains_and_registers(store, shared_dir):
    run(config(SPLIT_ONLY, "model=resnet50", "model.weights=null", f"data.dir={shared_dir}", "data.max_rows=60",
               "model.epochs=1", "model.image_size=[32,32]", "model.gradcam_images=1", "augment=none"))
    logged = last_run()
    assert logged.info.status == "FINISHED" and logged.data.params["model.weights"] == "None"
    assert len(MlflowClient().list_artifacts(logged.info.run_id, "gradcam")) == 1
    model = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model")
    frame, _, _ = data_pictures.load_images(shared_dir, max_rows=60, seed=42)
    assert len(model.predict(frame[["image_path"]].head(3))) == 3


def test_fusion_logs_both_parts_beside_it_and_falls_back_to_text(store, shared_dir):
    f1 = run(config(SPLIT_ONLY, "model=fusion", "model@model.image=sequential", f"data.dir={shared_dir}", "model.image.epochs=1",
                    "model.image.image_size=[32,32]", "augment=none"))
    logged = last_run()
    metrics = logged.data.metrics
    assert logged.data.tags["modality"] == "fusion" and metrics["test_f1_weighted"] == f1
    assert {"test_text_only_f1_weighted", "test_image_only_f1_weighted", "text_weight"} <= set(metrics)
    assert metrics["test_rows"] >= 40
    champion = MlflowClient().get_model_version_by_alias("rakuten-fusion", "champion")
    assert champion.run_id == logged.info.run_id
    model = mlflow.pyfunc.load_model("models:/rakuten-fusion@champion")
    products, _ = data.load_labelled(shared_dir, max_rows=300)
    frame, _, _ = data_pictures.load_images(shared_dir)
    rows = products[["designation", "description"]].join(frame["image_path"])
    assert rows["image_path"].isna().any() and rows["image_path"].notna().any()
    fused = model.predict(rows)["prdtypecode"]
    text_part = model.unwrap_python_model().predictor.text
    without_picture = rows["image_path"].isna()
    assert (fused[without_picture].to_numpy() == text_part.predict(rows[without_picture])).all()
