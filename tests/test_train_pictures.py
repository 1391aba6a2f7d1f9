"""The classical image model (`model=imagefeatures`) and its baseline, on real shared pictures:
no TensorFlow, a full citizen of the zoo (run, registration, pyfunc, probabilities)."""

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from rakuten import data, data_pictures
from rakuten.features.pictures import PictureDescriptors
from rakuten.train import run
from tests.helpers.stores import SAMPLE_DIR, SPLIT_ONLY, config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def test_descriptors_have_one_fixed_width_row_per_picture(shared_dir):
    frame, _, _ = data_pictures.load_images(shared_dir, max_rows=27, seed=1)
    frame = frame.head(6)
    described = PictureDescriptors().fit_transform(frame[["image_path"]])
    baseline = PictureDescriptors(hog_cell=0, lbp_radii=()).fit_transform(frame["image_path"])
    assert described.shape == (6, PictureDescriptors().width()) and baseline.shape == (6, 3 * 16 + 16 * 16)
    assert np.allclose(baseline[:, :16].sum(axis=1), 1)  # a histogram of the hue
    assert np.isfinite(described).all() and described.dtype == np.float32
    with pytest.raises(ValueError, match="'image_path' column"):
        PictureDescriptors().transform(frame[["imageid"]])


def test_colorhist_trains_on_the_bundled_samples_pictures(store):
    """What a fresh clone without the shared data can do: the sample ships its products' pictures."""
    pictures = sorted((SAMPLE_DIR / "images" / "image_train").glob("*.jpg"))
    run(config(SPLIT_ONLY, "model=colorhist"))
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    assert logged.info.status == "FINISHED" and logged.data.params["data.dir"] == str(SAMPLE_DIR)
    assert logged.data.metrics["images_found"] == len(pictures) >= 300 and logged.data.metrics["images_missing"] > 0
    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    predicted = mlflow.pyfunc.load_model("models:/rakuten-image@champion").predict(frame[["image_path"]].head(4))
    assert set(predicted["prdtypecode"]) <= set(labels.unique())


def test_imagefeatures_trains_registers_and_predicts_with_probabilities(store, shared_dir):
    f1 = run(config("model=imagefeatures", f"data.dir={shared_dir}", "data.max_rows=270", "cv.folds=2", "refit=all"))
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    assert logged.info.status == "FINISHED" and logged.data.tags["modality"] == "image"
    assert logged.data.metrics["test_f1_weighted"] == f1 and logged.data.metrics["cv_folds"] == 2
    assert logged.data.tags["refit_rows"] == "270"
    champion = MlflowClient().get_model_version_by_alias("rakuten-image", "champion")
    assert champion.run_id == logged.info.run_id
    model = mlflow.pyfunc.load_model("models:/rakuten-image@champion")
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=270, seed=42)
    by_path = model.predict(frame[["image_path"]].head(8), params={"return_proba": True, "top_k": 27})
    assert by_path["prdtypecode"].dtype == np.int64 and set(by_path["prdtypecode"]) <= set(labels.unique())
    assert [sum(t["probability"] for t in top) for top in by_path["top_k"]] == pytest.approx([1.0] * 8)
    by_ids = model.predict(frame[["imageid", "productid"]].head(8),
                           params={"images_dir": str(shared_dir / "images" / "image_train")})
    assert (by_ids["prdtypecode"].to_numpy() == by_path["prdtypecode"].to_numpy()).all()


def test_fusion_takes_the_picture_model_and_reports_its_gain_over_folds(store, shared_dir):
    f1 = run(config(SPLIT_ONLY, "model=fusion", "model@model.image=imagefeatures", "model@model.text=sgd_hinge",
                    f"data.dir={shared_dir}", "cv.folds=2", "model.image.descriptors.hog_cell=0",
                    "model.image.descriptors.size=32", "model.image.descriptors.lbp_radii=[1]"))
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    metrics = logged.data.metrics
    assert logged.data.tags["modality"] == "fusion" and metrics["test_f1_weighted"] == f1
    assert metrics["cv_folds"] == 2
    assert metrics["cv_fused_gain_mean"] == pytest.approx(
        metrics["cv_f1_weighted_mean"] - metrics["cv_text_only_f1_weighted_mean"], abs=2e-4)  # each logged to 4 decimals
    assert 0 <= metrics["cv_image_only_f1_weighted_mean"] < metrics["cv_text_only_f1_weighted_mean"]
    assert logged.data.params["model.image"] == "imagefeatures" and logged.data.params["model.text"] == "sgd_hinge"
    model = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model")
    products, _ = data.load_labelled(shared_dir, max_rows=300)
    frame, _, _ = data_pictures.load_images(shared_dir)
    rows = products[["designation", "description"]].join(frame["image_path"])
    fused = model.predict(rows, params={"return_proba": True})
    assert fused["prdtypecode"].dtype == np.int64 and (fused["probability"] > 0).all()
    without_picture = rows["image_path"].isna()
    text_part = model.unwrap_python_model().predictor.text
    assert (fused["prdtypecode"][without_picture].to_numpy() == text_part.predict(rows[without_picture])).all()
