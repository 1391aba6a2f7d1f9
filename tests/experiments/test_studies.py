"""The study tooling: report, EDA run, the benchmark's data replication, the CNN ablation's variants."""

import pytest
import mlflow
import numpy as np
import pandas as pd

from experiments import bench_text, cnn_ablation, eda, report
from rakuten import data
from rakuten.train import run
from tests.helpers.stores import SAMPLE_DIR, SPLIT_ONLY, config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def test_report_tables_a_study_and_logs_a_summary_run(store, tmp_path, capsys):
    scores = {name: run(config(SPLIT_ONLY, f"model={name}", "data.max_rows=400", "register=false", "mlflow.experiment=study"))
              for name in ("complementnb", "linearsvc")}
    run(config(SPLIT_ONLY, "model=linearsvc", "search=grid", "data.max_rows=400", "register=false", "mlflow.experiment=study",
               "model.search_space.C.grid=[0.5,1.0]"))
    assert report.main(["--experiment", "study", "--output", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3, "search candidates must not appear as study rows"
    f1_column = [float(r.split(" | ")[4]) for r in rows]
    assert f1_column == sorted(f1_column, reverse=True)
    assert {round(f, 4) for f in scores.values()} <= set(f1_column)
    assert "| linearsvc | none | tuned (config) | none |" in markdown and "0.8171" in markdown
    summaries = mlflow.search_runs(experiment_names=["study"], filter_string="tags.run_type = 'summary'",
                                   output_format="list")
    assert len(summaries) == 1
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(summaries[0].info.run_id)}
    assert logged == {"report.md", "report.png"}
    assert report.main(["--experiment", "study", "--output", str(tmp_path)]) == 0  # summaries are not rows
    assert (tmp_path / "report.md").read_text().count("\n| ") == markdown.count("\n| ")


def test_report_of_an_unknown_study_fails_clearly(store, capsys):
    assert report.main(["--experiment", "nothing"]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_eda_run_logs_classes_lengths_languages_and_words(store, capsys):
    assert eda.main(["--data-dir", str(SAMPLE_DIR)]) == 0
    assert mlflow.search_runs(experiment_names=["rakuten"], output_format="list") == []  # not among model runs
    logged = mlflow.search_runs(experiment_names=["rakuten-reports"], output_format="list")[0]
    assert logged.info.run_name == "eda"
    assert f"eda run {logged.info.run_id[:8]} in experiment rakuten-reports: `rakuten ui`, then http" in capsys.readouterr().out
    in_y = len(data.read_labels(data.find_file(SAMPLE_DIR, data.Y_FILE)))  # the sample's products and pictures
    assert in_y > 2000 and logged.data.metrics["labels"] == in_y and logged.data.metrics["classes"] == 27
    assert 0.2 < logged.data.metrics["share_empty_description"] < 0.5
    assert logged.data.metrics["share_french"] > 0.6
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(logged.info.run_id)}
    assert artifacts == {"class_histogram.png", "class_counts.json", "text_lengths.png", "languages.json",
                         "top_words.json", "word_clouds.png"}
    words = mlflow.artifacts.load_dict(f"runs:/{logged.info.run_id}/top_words.json")
    assert len(words) == 27 and any(word == "piscine" for word, _ in words["2583"][:5])


def test_replicated_data_keeps_labels_joined_by_index(tmp_path):
    folder = bench_text.replicate(SAMPLE_DIR, 6000, tmp_path / "big")
    products, labels = data.load_labelled(folder)
    original, original_labels = data.load_labelled(SAMPLE_DIR)
    assert len(products) == 6000 and products.index.is_unique
    assert labels.value_counts().equals(original_labels.value_counts() * 3)
    offset = int(original.index.max()) + 1
    assert products.loc[original.index[0] + 2 * offset, "designation"] == original.iloc[0]["designation"]
    assert pd.Series(labels.loc[original.index + offset].to_numpy()).equals(pd.Series(original_labels.to_numpy()))


def test_cnn_ablation_variants_each_undo_one_change_of_smallcnn():
    found = cnn_ablation.variants()
    small = found["smallcnn"]
    pictures = {"image_size", "grayscale", "channels"}
    for name, model in found.items():
        if name.startswith("smallcnn, "):
            changed = {key for key in small if model[key] != small[key]}
            assert len(changed) == 1 or changed == pictures, (name, changed)
    assert found["sequential (seed)"]["network"]["_target_"] == "rakuten.image_models.build_sequential"
    assert found["sequential (seed)"]["augment"]["name"] == "low"  # config.yaml's default augmentation


def test_cnn_ablation_batches_cover_every_picture_once_per_epoch_in_a_new_order():
    x, y = np.arange(10)[:, None] * 10, np.arange(10)
    batches = cnn_ablation.batches(x, y, 4, True, seed=0)
    first = [batches[number] for number in range(len(batches))]
    batches.on_epoch_end()
    second = np.concatenate([batches[number][1] for number in range(len(batches))])
    assert len(batches) == 3 and [len(b[1]) for b in first] == [4, 4, 2]
    assert all((b[0][:, 0] == b[1] * 10).all() for b in first)  # pictures stay with their labels
    assert sorted(np.concatenate([b[1] for b in first])) == list(range(10)) == sorted(second)
    assert (np.concatenate([b[1] for b in first]) != second).any()


def test_cnn_ablation_summary_sets_each_variant_against_smallcnn():
    results = pd.DataFrame({"variant": ["smallcnn"] * 2 + ["smallcnn, no label smoothing"] * 2,
                            "fold": [0, 1, 0, 1], "f1_weighted": [0.2, 0.3, 0.1, 0.2], "epochs": 10,
                            "fit_seconds": 5.0, "predict_pictures_per_s": 100})
    table = cnn_ablation.summary(results, ["smallcnn", "smallcnn, no label smoothing", "sequential (seed)"])
    assert table["config"].tolist() == ["smallcnn", "smallcnn, no label smoothing"]
    assert table["cv_f1_weighted"].tolist() == ["0.2500 ± 0.0500", "0.1500 ± 0.0500"]
    assert table["vs_smallcnn"].tolist() == ["", "-0.1000"]
