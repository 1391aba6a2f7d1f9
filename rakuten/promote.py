"""The Model Registry: register a run's model and decide who is `champion`.

The rule: a new version takes `champion` only if its `test_f1_weighted` beats the champion's on
the same data. When the champion was scored on other data (another data fingerprint), it is
scored again on the new run's test part, through its own pyfunc, so both numbers are comparable.
A worse model never takes `champion`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC = "test_f1_weighted"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    champion_score: float | None = None


def registry_name(modality: str) -> str:
    return f"rakuten-{modality}"


def register(model_uri: str, name: str, metrics: dict[str, float], fingerprint: str, summary: str):
    """Register `model_uri` as a new version of `name`, described by its metrics and data."""
    from mlflow import register_model

    version = register_model(model_uri, name)
    client = MlflowClient()
    scores = ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items()) if key.startswith("test_"))
    client.update_model_version(
        name, version.version, description=f"{summary}\n{scores}\ndata_fingerprint={fingerprint}"
    )
    client.set_model_version_tag(name, version.version, "data_fingerprint", fingerprint)
    client.set_model_version_tag(name, version.version, METRIC, f"{metrics[METRIC]:.6f}")
    return version


def current_champion(name: str):
    """The version holding `champion`, or None."""
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(
    name: str, version: str, score: float, fingerprint: str, rescore: Callable[[str], float]
) -> Decision:
    """Point `champion` at `version` if `score` beats the champion's on the same data.

    `rescore(model_uri)` scores another model on this run's test part; it is called only when
    the champion was evaluated on other data.
    """
    client = MlflowClient()
    champion = current_champion(name)
    if champion is None:
        client.set_registered_model_alias(name, CHAMPION, version)
        return Decision(True, "there was no champion")
    champion_run = client.get_run(champion.run_id)
    if champion_run.data.tags.get("data_fingerprint") == fingerprint and METRIC in champion_run.data.metrics:
        champion_score, where = champion_run.data.metrics[METRIC], "its logged score"
    else:
        try:
            champion_score, where = rescore(f"models:/{name}/{champion.version}"), "rescored on this test part"
        except Exception as error:  # a champion that cannot be scored here is kept, never silently replaced
            return Decision(False, f"champion v{champion.version} could not be scored on this data: {error}")
    if score > champion_score:
        client.set_registered_model_alias(name, CHAMPION, version)
        return Decision(
            True, f"{score:.4f} beats champion v{champion.version} ({champion_score:.4f}, {where})", champion_score
        )
    return Decision(
        False, f"{score:.4f} does not beat champion v{champion.version} ({champion_score:.4f}, {where})",
        champion_score,
    )
