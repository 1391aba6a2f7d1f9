"""What a finished run tells the tools that come after it: its config and its test part.

`predict`, `explain` and `promote` start from a model URI or a run id, never from training code;
`rakuten.recipes.test_part` rebuilds a run's split from the `config.yaml` it logged.
"""

from __future__ import annotations

import mlflow
from omegaconf import DictConfig, OmegaConf

from rakuten import data
from rakuten.cli import command, open_store, store_options


def run_config(run_id: str) -> DictConfig:
    return OmegaConf.create(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))


def refitted(run_id: str) -> bool:
    """Whether the run's logged model was refitted on every labelled row (its test part included)."""
    return mlflow.get_run(run_id).data.tags.get("refit") == "all"


def model_run_id(model_uri: str) -> str:
    """The run that logged the model behind `model_uri` (runs:/, models:/ name@alias or version)."""
    return mlflow.models.get_model_info(model_uri).run_id


def predict_test_part(model_uri: str, parts: data.Split, retrain: bool = False):
    """Any registered or logged model's predictions of a split's test part, through its own pyfunc.

    `retrain`: the model's recipe (its text pipeline unfitted, params kept) is first trained on
    the split's training part: the way to score a model refitted on rows of this test part.
    """
    from sklearn.base import clone

    inputs = parts.X_test[[c for c in ("designation", "description", "image_path") if c in parts.X_test.columns]]
    model = mlflow.pyfunc.load_model(model_uri)
    if retrain:
        pipeline = getattr(model.unwrap_python_model(), "pipeline", None)
        if pipeline is None:
            raise ValueError(f"{model_uri} holds no text pipeline to retrain")
        return clone(pipeline).fit(parts.X_train, parts.y_train).predict(inputs)
    return model.predict(inputs)["prdtypecode"].to_numpy()


def score_model(model_uri: str, parts: data.Split, retrain: bool = False) -> float:
    """Weighted F1 of any registered or logged model on a test part (`predict_test_part`)."""
    from rakuten import evaluate

    return evaluate.score(parts.y_test, predict_test_part(model_uri, parts, retrain))["test_f1_weighted"]


@command
def main(argv: list[str] | None = None) -> int:
    """`python -m rakuten.runs --repair`: end FAILED the runs that dead processes left RUNNING."""
    import argparse

    from rakuten import lifecycle, tracking

    parser = argparse.ArgumentParser(parents=[store_options(verbose=False)], prog="python -m rakuten.runs",
                                     description="Housekeeping of the tracking store's runs.")
    parser.add_argument("--repair", action="store_true",
                        help="end FAILED every RUNNING run whose process, on this machine, is gone, and every run "
                             "that `mlflow run` started but whose job never began; remove dead jobs' temporary folders "
                             "and stop their leftover worker processes")
    parser.add_argument("--stale-minutes", type=float, default=tracking.STALE_LAUNCH_MINUTES,
                        help="a run of `mlflow run` without a job's process tags this old is orphaned")
    args = parser.parse_args(argv)
    if not args.repair:
        parser.print_help()
        return 2
    open_store(args.tracking_uri)
    ended = tracking.end_orphaned_runs(None, stale_launch_minutes=args.stale_minutes)
    removed = lifecycle.remove_dead_job_folders()
    workers = lifecycle.stop_orphaned_workers()
    print(f"ended FAILED {len(ended)} runs left RUNNING by processes that are gone or launches that never started"
          + (f": {', '.join(ended)}" if ended else "")
          + f"; removed {len(removed)} temporary folders of dead jobs; stopped {len(workers)} worker processes "
            "of dead jobs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
