"""What the MLflow UI (3.17) shows for an experiment: the runs table of classic model development,
best weighted F1 first, with the columns people compare (a shared view, `rakuten.ui` links to it)."""

from __future__ import annotations

import json

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
RUNS_VIEW_KEY = "rakuten-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
RUNS_VIEW = {
    "orderByKey": "metrics.`test_f1_weighted`", "orderByAsc": False,
    "selectedColumns": ["attributes.`Dataset`"] + [f"metrics.`{m}`" for m in ("test_f1_weighted", "fit_seconds")]
    + [f"params.`{p}`" for p in ("model.C", "model.alpha", "model.name", "resampler.name")],
}


def set_runs_view(experiment_id: str) -> None:
    """Tag the experiment with the runs-table view, unless it has it. Jobs that start together on a
    server race to insert the same tag (PostgreSQL answers all but one with a unique-key error):
    the tag being there afterwards is what counts."""
    client, value = MlflowClient(), json.dumps(RUNS_VIEW)
    if client.get_experiment(experiment_id).tags.get(RUNS_VIEW_TAG) == value:
        return
    try:
        client.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, value)
    except MlflowException:
        if client.get_experiment(experiment_id).tags.get(RUNS_VIEW_TAG) != value:
            raise
