import numpy as np
import pytest
from imblearn.under_sampling import RandomUnderSampler
from sklearn.naive_bayes import MultinomialNB

from rakuten import data
from rakuten.features.text import build_text_features
from rakuten.models import Calibrated, build_pipeline, pipeline_from_config
from tests.helpers.stores import MODELS, SAMPLE_DIR, config

@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_builds_its_estimator(name):
    pipeline = pipeline_from_config(config(f"model={name}"))
    assert [step for step, _ in pipeline.steps] == ["fields", "vectorizers", "resampler", "model"]
    cfg = config(f"model={name}")
    estimator = pipeline["model"].estimator if isinstance(pipeline["model"], Calibrated) else pipeline["model"]
    assert type(estimator).__name__ == cfg.model.estimator._target_.rsplit(".", 1)[1]
    assert isinstance(pipeline["model"], Calibrated) == bool(cfg.model.get("calibrate"))


def test_seed_values_reach_the_estimators():
    assert pipeline_from_config(config("model=linearsvc"))["model"].estimator.C == pytest.approx(0.74)
    sgd = pipeline_from_config(config("model=sgd"))["model"]
    assert (sgd.loss, sgd.alpha, sgd.penalty, sgd.max_iter) == ("modified_huber", 1e-4, "l2", 2000)
    nb = pipeline_from_config(config("model=multinomialnb"))["model"]
    assert (nb.alpha, nb.fit_prior) == (0.1, False)


def test_resampler_runs_on_the_training_part_only():
    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=800)
    parts = data.split(products, labels)
    features = build_text_features({"words": {"column": "text"}})
    pipeline = build_pipeline(features, RandomUnderSampler(random_state=0), MultinomialNB())
    pipeline.fit(parts.X_train, parts.y_train)
    counts = pipeline["model"].class_count_
    assert np.all(counts == counts.min()) and counts.min() == parts.y_train.value_counts().min()
    assert len(pipeline.predict(parts.X_test)) == len(parts.X_test)


@pytest.mark.parametrize("name", ["random_under", "enn", "smote", "adasyn"])
def test_resampler_configs_build_imblearn_samplers(name):
    sampler = pipeline_from_config(config(f"resampler={name}"))["resampler"]
    assert type(sampler).__module__.startswith("imblearn.")
    assert pipeline_from_config(config("resampler=none"))["resampler"] is None
