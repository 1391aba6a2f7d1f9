"""A logged model's requirements come from the objects of its pipeline: a new model family is a
yaml (and a pin), never a hand-kept list to remember."""

import subprocess
import sys

import mlflow
import pytest

from rakuten import PROJECT_ROOT
from tests.helpers.jobs import job_env

FAMILY = """# a new family: imbalanced-learn's balanced random forest, from this yaml alone
name: balanced_forest
modality: text
max_features: 3000
estimator:
  _target_: imblearn.ensemble.BalancedRandomForestClassifier
  n_estimators: 20
  sampling_strategy: all
  replacement: true
  bootstrap: false
"""


@pytest.mark.slow
def test_a_family_from_a_yaml_alone_logs_the_requirements_it_needs(store, tmp_path):
    folder = tmp_path / "conf" / "model"
    folder.mkdir(parents=True)
    (folder / "balanced_forest.yaml").write_text(FAMILY)
    done = subprocess.run([sys.executable, "-m", "rakuten.train", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                           "model=balanced_forest", "data.max_rows=400", "refit=none", "register=false",
                           f"cache.dir={tmp_path / 'cache'}",
                           f"hydra.run.dir={tmp_path / 'job'}"], cwd=PROJECT_ROOT, env=job_env(store, tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")[0]
    assert logged.data.params["model.class"] == "BalancedRandomForestClassifier"
    uri = f"runs:/{logged.info.run_id}/model"
    pinned = dict(line.split("==") for line in
                  open(mlflow.pyfunc.get_model_dependencies(uri)).read().split() if "==" in line)
    from importlib.metadata import version

    for package in ("imbalanced-learn", "scikit-learn", "nltk", "simplemma", "stop-words", "mlflow", "pandas"):
        assert pinned.get(package) == version(package), (package, pinned)
    assert "tensorflow-cpu" not in pinned and "torch" not in pinned, "a text model needs no network runtime"
    predicted = mlflow.pyfunc.load_model(uri).predict([{"designation": "Piscine tubulaire ronde 300 cm"}])
    assert len(predicted) == 1


def test_requirements_follow_the_objects():
    from imblearn.pipeline import Pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from rakuten.features.pictures import PictureDescriptors
    from rakuten.model_logging import requirements_of

    assert requirements_of(Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])) == (
        "imbalanced-learn", "scikit-learn")
    found = requirements_of(Pipeline([("describe", PictureDescriptors()), ("model", LogisticRegression())]))
    assert {"scikit-image", "pillow", "scikit-learn"} <= set(found) and "rakuten" not in found
