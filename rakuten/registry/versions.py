"""The registered versions and their aliases, in MLflow's Model Registry: read into the rule's plain
values (`Version`), registered, pointed at. What they mean is `rakuten.registry.rule`'s."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rakuten.data_of import DataOf
from rakuten.registry.rule import CHAMPION, FAST, Version
from rakuten.tracking import alive_or_finished, muted, redact
from rakuten.tracking.http import called_again_on_broken_reply

CHALLENGER = "challenger"
LATENCY_TAG = "latency_ms"  # one row alone, median
ROW_COST_TAG = "ms_per_row"  # in a batch of `model_check.BATCH_ROWS` rows: what decides `fast`
GAIN_TAG, GAIN_CI_TAG = "f1_gain", "f1_gain_ci95"  # over the champion it was held against, on the same rows
METRIC = "test_f1_weighted"
MODALITIES = ("text", "image", "fusion")  # one registered model each: rakuten-<modality>

__all__ = ["CHAMPION", "CHALLENGER", "FAST", "GAIN_CI_TAG", "GAIN_TAG", "LATENCY_TAG", "METRIC", "MODALITIES",
           "ROW_COST_TAG", "alias", "as_version", "current_champion", "point", "register", "registry_name",
           "remove_alias", "versions_of"]


def registry_name(modality: str) -> str:
    return f"rakuten-{modality}"


def as_version(found) -> Version:
    """An MLflow model version as the rule sees it (usable: its run finished, or its job is at work)."""
    tags = found.tags
    cost = tags.get(ROW_COST_TAG)
    usable = alive_or_finished(found.run_id)
    return Version(str(found.version), float(tags[METRIC]) if METRIC in tags else None, tags.get("data_fingerprint"),
                   DataOf.of_tags(tags), float(cost) if cost is not None else None, usable)


@called_again_on_broken_reply
def versions_of(name: str) -> list[Version]:
    return [as_version(found) for found in MlflowClient().search_model_versions(f"name='{name}'")]


@called_again_on_broken_reply
def alias(name: str, alias_name: str):
    """The MLflow version holding `alias_name`, or None when the registry answers that no version
    (or no model `name`) holds it. A read that fails otherwise raises: a champion not read is not
    "no champion" (the worse candidate would take its place)."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
                error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(error)):
            return None
        raise


def current_champion(name: str):
    return alias(name, CHAMPION)


def point(name: str, alias_name: str, number: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias_name, str(number))


def remove_alias(name: str, alias_name: str) -> None:
    MlflowClient().delete_registered_model_alias(name, alias_name)


def register(model_uri: str, name: str, metrics: dict[str, float], fingerprint: str, summary: str,
             tags: dict[str, str] | None = None, measured: tuple[float, float] | None = None):
    """Register `model_uri` as a new version of `name`, described by its metrics and data.

    The version carries its fingerprint and score as tags from the start: that is what concurrent
    promotions compare. `tags` adds others (`refit_rows`: refitted on every labelled row; the data).
    `measured`: its (latency, cost a row) when already measured, else measured here (`fast` reads them).
    """
    from rakuten.model_check import check

    with muted():  # MLflow prints its own "Successfully registered" lines
        version = mlflow.register_model(
            model_uri, name,
            tags={"data_fingerprint": fingerprint, METRIC: repr(float(metrics[METRIC])), **(tags or {})})
    client = MlflowClient()
    scores = ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items()) if key.startswith("test_"))
    client.update_model_version(
        name, version.version,
        description=f"{markdown_text(redact(summary))}\n{scores}\ndata_fingerprint={fingerprint}")
    client.set_tag(version.run_id, "registered_version", str(version.version))
    if measured is None:
        problem, latency, row_cost = check(f"models:/{name}/{version.version}")
        measured = None if problem else (latency, row_cost)
    if measured is not None:
        client.set_model_version_tag(name, version.version, LATENCY_TAG, f"{measured[0]:.2f}")
        client.set_model_version_tag(name, version.version, ROW_COST_TAG, f"{measured[1]:.3f}")
    return version


def markdown_text(text: str) -> str:
    """`text` shown as it is by the registry's Markdown view: no tag, link or picture made of it."""
    import html
    import re

    return re.sub(r"([\\`*_\[\](){}#+!|~-])", r"\\\1", html.escape(text, quote=False))
