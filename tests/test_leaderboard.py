"""`python -m rakuten.leaderboard` and `python -m rakuten.evaluate` on real runs: one table per
dataset (picture runs apart), training jobs only (search candidates stay under their parent), and
a registered model scored on a labelled file with its evaluation logged beside the version."""

import pytest
import gzip
import subprocess
import sys

import mlflow
from mlflow import MlflowClient

from rakuten import PROJECT_ROOT, leaderboard
from rakuten.train import run
from tests.helpers.stores import SAMPLE_DIR, SPLIT_ONLY, config

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's


def command(store: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "MLFLOW_TRACKING_URI": store})


def test_leaderboard_groups_runs_per_dataset_best_first_without_search_children(store, shared_dir):
    weak = run(config(SPLIT_ONLY, "data.max_rows=400", "model=multinomialnb", "model.estimator.alpha=30"))
    strong = run(config(SPLIT_ONLY, "data.max_rows=400", "model=linearsvc", "search=grid", "search.grid_points=2", "search.cv=2"))
    full = run(config(SPLIT_ONLY, f"data.dir={shared_dir}", "data.max_rows=600", "register=false"))
    groups = leaderboard.by_dataset(leaderboard.entries("rakuten"))
    assert list(groups) == ["rakuten-full", "rakuten-sample"]
    sample = groups["rakuten-sample"]
    assert [round(e.f1, 4) for e in sample] == [round(max(weak, strong), 4), round(min(weak, strong), 4)]
    assert len(sample) == 2, "a search's candidates are not training runs"
    assert [e.rows for e in sample] == ["400", "400"] and [e.rows for e in groups["rakuten-full"]] == ["600"]
    champion_line = next(e for e in sample if "champion" in e.version)
    assert champion_line.f1 == max(weak, strong) and champion_line.ms_per_row != "-"
    assert round(groups["rakuten-full"][0].f1, 4) == round(full, 4)

    said = command(store, "rakuten.leaderboard", "--dataset", "rakuten-sample")
    assert said.returncode == 0, said.stderr
    lines = said.stdout.splitlines()
    assert lines[0] == "rakuten-sample (text): 2 finished runs, best first"
    assert "rakuten-full" not in said.stdout
    assert lines[2].split()[2] == f"{max(weak, strong):.4f}" and "champion" in lines[2]
    assert "weakest classes of the best: " in lines[-1]
    nothing = command(store, "rakuten.leaderboard", "--modality", "image")
    assert nothing.returncode == 2 and "no finished run" in nothing.stdout


def test_evaluate_scores_a_registered_model_on_a_labelled_file_and_logs_it(store, tmp_path, shared_dir):
    run(config("refit=none"))  # champion trained on the sample's training part
    # a labelled export: shared products that the sample does not hold
    x_lines = gzip.open(shared_dir / "X_train_update.csv.gz", "rt", encoding="utf-8").read().splitlines(keepends=True)
    sample_index = {line.split(",", 1)[0] for line in
                    gzip.open(SAMPLE_DIR / "X_train_update.csv.gz", "rt", encoding="utf-8").read().splitlines()[1:]}
    import csv
    import io

    rows = list(csv.reader(io.StringIO("".join(x_lines))))
    kept = [rows[0]] + [r for r in rows[1:] if r[0] not in sample_index][:300]
    x_file, y_file = tmp_path / "X_new.csv", tmp_path / "Y_new.csv"
    with open(x_file, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(kept)
    labels = {line.split(",")[0]: line.strip() for line in
              gzip.open(shared_dir / "Y_train_CVw08PX.csv.gz", "rt").read().splitlines()[1:]}
    y_file.write_text(",prdtypecode\n" + "\n".join(labels[r[0]] for r in kept[1:]) + "\n")

    said = command(store, "rakuten.evaluate", "--model-uri", "models:/rakuten-text@champion", str(x_file), str(y_file))
    assert said.returncode == 0, said.stderr
    f1 = float(said.stdout.splitlines()[-1].split()[0].removeprefix("f1_weighted="))
    assert 0.3 < f1 < 0.95, said.stdout  # unseen products: a real score, neither chance nor memory
    evaluation = mlflow.search_runs(experiment_names=["rakuten-evaluations"], output_format="list")[0]
    assert evaluation.info.status == "FINISHED"
    assert round(evaluation.data.metrics["f1_weighted"], 4) == round(f1, 4)
    assert evaluation.data.tags["evaluated_version"] == "rakuten-text v1"
    artifacts = {a.path for a in MlflowClient().list_artifacts(evaluation.info.run_id)}
    assert {"classification_report.json", "confusion_matrix.png"} <= artifacts
    version = MlflowClient().get_model_version("rakuten-text", "1")
    assert version.tags["evaluation.X_new.csv"].startswith(f"f1_weighted={f1:.4f} (300 rows")
    # the evaluation is no training run: the leaderboard does not list it
    assert all(e.run_id != evaluation.info.run_id for e in leaderboard.entries("rakuten-evaluations"))

    unlabelled = command(store, "rakuten.evaluate", str(SAMPLE_DIR / "X_train_update.csv.gz"), str(y_file))
    assert unlabelled.returncode == 2
    assert unlabelled.stderr.strip().splitlines() == [unlabelled.stderr.strip().splitlines()[-1]]
    assert "have no label in" in unlabelled.stderr and "Y_new.csv" in unlabelled.stderr
    # labels the model does not know: a warning with their count, refused with --strict (finding 15, round 4)
    unknown = tmp_path / "Y_unknown.csv"
    unknown.write_text(",prdtypecode\n" + "\n".join(
        line.split(",")[0] + ",99999" if number < 10 else line
        for number, line in enumerate(labels[r[0]] for r in kept[1:])) + "\n")
    warned = command(store, "rakuten.evaluate", str(x_file), str(unknown))
    assert warned.returncode == 0, warned.stderr
    assert (f"warning: 10 of 300 rows of {unknown} have labels models:/rakuten-text@champion does not know (99999): "
            "scored as errors (--strict refuses them)") in warned.stderr
    strict = command(store, "rakuten.evaluate", "--strict", str(x_file), str(unknown))
    assert strict.returncode == 2 and strict.stderr.strip().count("\n") == 0 and "does not know" in strict.stderr
    # rows the model learned (the sample's training part): said, and scored apart (issue 34, row 5)
    own = command(store, "rakuten.evaluate", str(SAMPLE_DIR / "X_train_update.csv.gz"),
                  str(SAMPLE_DIR / "Y_train_CVw08PX.csv.gz"))
    assert own.returncode == 0, own.stderr
    learned = [line for line in own.stderr.splitlines() if "learned" in line]
    assert len(learned) == 1 and learned[0].startswith(
        "warning: models:/rakuten-text@champion learned 1,600 of these 2,000 rows: their score flatters it; on the "
        "400 unseen rows f1_weighted="), own.stderr
