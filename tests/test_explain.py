import pytest
import mlflow
import numpy as np
from mlflow import MlflowClient

from rakuten import explain, logged_runs, recipes

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

CHAMPION = "models:/rakuten-text@champion"


def test_linearsvc_gets_class_scores_summing_to_one(champion_store):
    from rakuten import data
    from rakuten.models import pipeline_from_config
    from tests.helpers.stores import SAMPLE_DIR, config

    products, labels = data.load_labelled(SAMPLE_DIR, max_rows=400)
    plain = pipeline_from_config(config("model.calibrate=false")).fit(products, labels)  # no predict_proba
    default = mlflow.pyfunc.load_model(CHAMPION).unwrap_python_model().pipeline  # calibrated: probabilities
    assert not hasattr(plain, "predict_proba") and hasattr(default, "predict_proba")
    for pipeline in (plain, default):
        scores = explain.class_scores(pipeline)(["Piscine tubulaire ronde ||| pompe et filtre", "Jeu PS4"])
        assert scores.shape == (2, len(pipeline.classes_))
        assert np.allclose(scores.sum(axis=1), 1)


def test_explanations_are_logged_to_the_model_run(champion_store, tmp_path, capsys):
    run_id = logged_runs.model_run_id(CHAMPION)
    index = int(recipes.test_part(run_id).X_test.index[0])
    assert explain.main(["--index", str(index), "--num-samples", "300", "--output", str(tmp_path)]) == 0
    logged = {a.path for a in MlflowClient().list_artifacts(run_id, "explanations")}
    assert logged == {f"explanations/product_{index}.html", f"explanations/product_{index}.png"}
    page = (tmp_path / f"product_{index}.html").read_text()
    assert "<html>" in page and "lime" in page.lower()
    assert (tmp_path / f"product_{index}.png").read_bytes()[:4] == b"\x89PNG"
    assert f"product {index}: predicted" in capsys.readouterr().out


def test_words_that_decide_are_words_of_the_product(champion_store):
    pipeline = mlflow.pyfunc.load_model(CHAMPION).unwrap_python_model().pipeline
    parts = recipes.test_part(logged_runs.model_run_id(CHAMPION))
    products = parts.X_test.head(2)
    for (index, predicted, explanation), (_, row) in zip(
        explain.explain_products(pipeline, products, num_samples=300), products.iterrows()
    ):
        assert predicted == pipeline.predict(products.loc[[index]])[0]
        text = f"{row['designation']} {row['description']}"
        assert all(word in text for word, _ in explanation.as_list(label=explanation.available_labels()[0]))


def test_unknown_index_is_refused(champion_store, capsys):
    assert explain.main(["--index", "-5"]) == 2
    assert "not in the test part" in capsys.readouterr().err


def test_explain_says_its_estimate_first_and_fits_the_samples_to_the_models_cost(champion_store, capsys):
    """Finding 9b: LIME on an e5 model was silent for almost 6 minutes. Expected: an estimate first, and
    fewer samples when the model cannot score --num-samples texts within --seconds-per-product."""
    run_id = logged_runs.model_run_id(CHAMPION)
    index = int(recipes.test_part(run_id).X_test.index[0])
    pipeline = mlflow.pyfunc.load_model(CHAMPION).unwrap_python_model().pipeline
    rate = explain.texts_per_second(pipeline, recipes.test_part(run_id).X_test.head(1))
    budget = 150 / rate  # time for about 150 texts
    capsys.readouterr()
    assert explain.main(["--index", str(index), "--num-samples", "1000", "--seconds-per-product", f"{budget}"]) == 0
    said = capsys.readouterr().out.splitlines()[0]
    assert said.startswith("explaining 1 products with ") and "lowered from 1000 to fit --seconds-per-product" in said
    samples = int(said.split(" with ")[1].split()[0])
    assert 100 <= samples < 1000 and said.endswith("texts/s)")
    assert explain.fitting_samples(1000, rate=10.0, seconds_per_product=60) == 600
    assert explain.fitting_samples(1000, rate=1.0, seconds_per_product=5) == explain.MIN_SAMPLES
