"""What the MLflow UI (3.17) shows for an experiment: the runs table of classic model development,
best weighted F1 first, with the columns people compare (a shared view, `rakuten.ui` links to it);
and one such view per dataset (its runs alone: the contest of one dataset and modality, the
datasets of picture and fusion runs being named apart), holding the training jobs only: search
candidates and study folds carry no `dataset` tag, so they stay under their parent run."""

from __future__ import annotations

import json
import re

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rakuten.tracking.http import called_again_on_broken_reply

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
RUNS_VIEW_KEY = "rakuten-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
# weighted F1 first: at 1600 px with MLflow's Assistant panel open it stays in view, its header whole; the
# params in this order (MLflow's own is alphabetical), the model and its features before its settings
_COLUMNS = ([f"metrics.`{m}`" for m in ("test_f1_weighted", "cv_f1_weighted_mean", "fit_seconds")]
            + ["attributes.`Dataset`"] + [f"params.`{p}`" for p in ("model.name", "features.name", "resampler.name",
                                                              "model.C", "model.alpha")])
_WIDTHS = {"metrics.`test_f1_weighted`": 135, "metrics.`cv_f1_weighted_mean`": 175,  # px: the names whole
           "params.`model.name`": 115, "params.`resampler.name`": 115}
RUNS_VIEW = {"orderByKey": "metrics.`test_f1_weighted`", "orderByAsc": False, "selectedColumns": _COLUMNS,
             "columnOrder": _COLUMNS, "columnWidths": _WIDTHS}


def dataset_view_key(dataset: str) -> str:
    """The share key of the view of one dataset's runs."""
    return "runs-" + re.sub(r"[^A-Za-z0-9_.-]", "_", dataset)


def dataset_view(dataset: str) -> dict:
    """One dataset's runs: no Dataset column (the filter says it), so that at 1600 px, MLflow's
    Assistant panel open, the weighted F1 and the key hyperparameters stay in view."""
    columns = [c for c in _COLUMNS if c not in ("attributes.`Dataset`", "metrics.`fit_seconds`")]
    return {**RUNS_VIEW, "selectedColumns": columns, "columnOrder": columns, "searchFilter": f"tags.dataset = '{dataset}'"}


@called_again_on_broken_reply
def set_runs_view(experiment_id: str, dataset: str | None = None) -> None:
    """Tag the experiment with the runs-table view (`dataset`: the view of that dataset's runs),
    unless it has it. Jobs that start together on a server race to insert the same tag (PostgreSQL
    answers all but one with a unique-key error): the tag being there afterwards is what counts."""
    client = MlflowClient()
    tag = RUNS_VIEW_TAG if dataset is None else f"mlflow.sharedViewState.{dataset_view_key(dataset)}"
    value = json.dumps(RUNS_VIEW if dataset is None else dataset_view(dataset))
    if client.get_experiment(experiment_id).tags.get(tag) == value:
        return
    try:
        client.set_experiment_tag(experiment_id, tag, value)
    except MlflowException:
        if client.get_experiment(experiment_id).tags.get(tag) != value:
            raise


DEFAULT_PORT = 5000  # where `python -m rakuten.ui` serves the UI of a file store
VIEW = "workflowType=machine_learning"


def ui_base(tracking_uri: str, port: int = DEFAULT_PORT) -> str:
    """Where the UI of this store is: the server itself, or the `python -m rakuten.ui` of a file store."""
    from rakuten.tracking.console import redact

    if tracking_uri.startswith(("http://", "https://")):
        return redact(tracking_uri.rstrip("/")).replace(":***@", "@")
    return f"http://127.0.0.1:{port}"


def experiment_url(base: str, experiment_id: str, dataset: str | None = None) -> str:
    """The runs table of the experiment: one dataset's training runs (`dataset`), else all runs."""
    key = RUNS_VIEW_KEY if dataset is None else dataset_view_key(dataset)
    return f"{base}/#/experiments/{experiment_id}/runs?{VIEW}&viewStateShareKey={key}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where a person sees the run: on a server, its page; on a file store, its page once
    `rakuten ui` serves it (no server runs until then)."""
    page = f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW}"
    return page if tracking_uri.startswith(("http://", "https://")) else f"`rakuten ui`, then {page}"
