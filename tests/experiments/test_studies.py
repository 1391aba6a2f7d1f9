"""The study tooling: report, EDA run, and the benchmark's data replication."""

import mlflow
import pandas as pd

from experiments import bench_text, eda, report
from rakuten import data
from rakuten.train import run
from tests.conftest import SAMPLE_DIR, config


def test_report_tables_a_study_and_logs_a_summary_run(store, tmp_path, capsys):
    scores = {name: run(config(f"model={name}", "data.max_rows=400", "register=false", "mlflow.experiment=study"))
              for name in ("complementnb", "linearsvc")}
    run(config("model=linearsvc", "search=grid", "data.max_rows=400", "register=false", "mlflow.experiment=study",
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


def test_eda_run_logs_classes_lengths_languages_and_words(store):
    assert eda.main(["--data-dir", str(SAMPLE_DIR)]) == 0
    logged = mlflow.search_runs(experiment_names=["rakuten"], output_format="list")[0]
    assert logged.info.run_name == "eda"
    assert logged.data.metrics["labels"] == 2000 and logged.data.metrics["classes"] == 27
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
