"""What a run logs beside its params: metrics as people read them, reports, figures, tags, search
candidates, epochs, and the summary runs of studies and reports."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from rakuten.tracking.run_lifecycle import process_tags
from rakuten.tracking.http import called_again_on_broken_reply


def readable(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics as people read them in the runs table: seconds to 2 decimals, the rest (scores,
    rates, counts) to 4. The full values stay in `classification_report.json`."""
    return {key: round(float(value), 2 if "seconds" in key else 4) for key, value in metrics.items()}


@called_again_on_broken_reply
def log_evaluation(metrics: dict[str, float], report_dict: dict, report_text: str, figures: dict) -> None:
    """Metrics (`readable`), `classification_report.json` / `.txt`, and each figure as `<name>.png`."""
    mlflow.log_metrics(readable(metrics))
    mlflow.log_dict(report_dict, "classification_report.json")
    mlflow.log_text(report_text, "classification_report.txt")
    log_figures(figures)


def log_figures(figures: dict) -> None:
    """Each figure as `<name>.png` of the active run, then closed (a long job keeps no figure)."""
    from matplotlib import pyplot  # here: commands that log no figure (serve, team-server) never import it

    for name, figure in figures.items():
        mlflow.log_figure(figure, f"{name}.png")
        pyplot.close(figure)


@called_again_on_broken_reply
def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


@called_again_on_broken_reply
def log_files_to_run(run_id: str, paths, artifact_path: str) -> None:
    """Add files to a run after the fact (explanations of a finished run's model)."""
    client = mlflow.MlflowClient()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


def log_candidate(candidate, search: str) -> None:
    """One search candidate as a child run of the active run (its params and CV score), and its line."""
    tags = {"search": search, **process_tags()}  # a kill mid-candidate: `end_orphaned_runs` ends it
    with mlflow.start_run(run_name=f"{search}-{candidate.number}", nested=True, tags=tags):
        mlflow.log_params({key: str(value) for key, value in candidate.params.items()})
        mlflow.log_metrics(readable({"cv_f1_weighted": candidate.cv_score, "cv_f1_weighted_std": candidate.cv_std,
                                     "fit_seconds": candidate.fit_seconds}))
    print(f"  {search} candidate {candidate.number}: cv_f1_weighted={candidate.cv_score:.4f} "
          f"± {candidate.cv_std:.4f}  {candidate.params}", flush=True)


@called_again_on_broken_reply
def log_search_result(result) -> None:
    """The best params and CV score, logged and said; for a shared Optuna study, those of the whole study so far
    (other workers' trials included), its size and name."""
    mlflow.log_params({f"best.{key}": str(value) for key, value in result.best_params.items()})
    mlflow.log_metrics(readable({"best_cv_f1_weighted": result.best_score, "search_candidates": len(result.candidates)}))
    if result.study:
        mlflow.log_metrics({"study_trials": result.study["trials"], "study_best_trial": result.study["best_trial"],
                            "study_failed_trials": result.study.get("failed_trials", 0)})
        mlflow.set_tag("optuna_study", result.study["name"])
    print(f"best of {len(result.candidates)} candidates: cv_f1_weighted={result.best_score:.4f} "
          f"with {result.best_params}", flush=True)
    if result.study.get("failed_trials"):
        print(f"study {result.study['name']}: {result.study['trials']} trials finished, "
              f"{result.study['failed_trials']} failed (a worker died or stopped beating)", flush=True)


@called_again_on_broken_reply
def log_epoch(metrics: dict[str, float], step: int) -> None:
    mlflow.log_metrics(readable({f"epoch_{key}": value for key, value in metrics.items()}), step=step)


def log_summary_run(run_name: str, experiment: str, tags: dict[str, str], metrics: dict[str, float],
                    files: dict[str, str], figures: dict | None = None, dicts: dict[str, dict] | None = None) -> str:
    """A run made of other runs or of the data (a study's table, a report, the EDA): its tags,
    metrics, text files, figures (`<name>.png`) and dicts (`<name>.json`). Returns its id."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags) as active, tempfile.TemporaryDirectory() as folder:
        mlflow.log_metrics(readable(metrics))
        for file_name, text in files.items():
            (Path(folder) / file_name).write_text(text)
        log_figures(figures or {})
        for name, content in (dicts or {}).items():
            mlflow.log_dict(content, f"{name}.json")
        if files:
            mlflow.log_artifacts(folder)
        return active.info.run_id


def find_runs(experiment: str, filter_string: str = ""):
    """The runs of `experiment` matching `filter_string`, as a DataFrame (MLflow's search)."""
    return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string)


@called_again_on_broken_reply
def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(readable(metrics))
