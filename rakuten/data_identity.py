"""How a candidate's data stands to the champion's (`DataOf`, the data a model learned from, is `rakuten.data`'s).

A version records which products its data folder offered (`data_population`, their ids digested; the
ids themselves in its run's `data/population.npy`) and how many it drew (`data_rows`). `relation`
says whether a candidate learned from the `SAME` data, `FEWER` rows of it, or `OTHER` data: what
the registry's rule (`rakuten.registry.rule`) decides by.
"""

from __future__ import annotations

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from rakuten.data_of import DataOf
from rakuten.tracking import POPULATION_ARTIFACT, muted

SAME, FEWER, OTHER = "same", "fewer", "other"  # a candidate's data against the champion's
UNKNOWN = "unknown"  # fewer rows of other products, and the champion's ids are lost: nothing may move


def population_ids(run_id: str) -> np.ndarray | None:
    """The ids a run's data offered (`POPULATION_ARTIFACT`), None when it logged none."""
    try:
        with muted():
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=POPULATION_ARTIFACT)
        return np.load(path)
    except (MlflowException, OSError, ValueError):
        return None


def relation(candidate: DataOf, version, ids_of=population_ids) -> str:
    """`SAME`, `FEWER` or `OTHER`: the data of `candidate` held against that of `version` (a model
    version; see the module's docstring). A version registered before data was recorded is `SAME`
    when scored on the same split, `OTHER` otherwise. A candidate with fewer rows than the version's
    whose ids cannot be held against the version's (its `POPULATION_ARTIFACT` is gone) is `UNKNOWN`:
    missing evidence never demotes a champion."""
    held = DataOf.of_tags(version.tags)
    if held is None:
        return SAME
    if held.population == candidate.population:
        return SAME if candidate.rows == held.rows else (FEWER if candidate.rows < held.rows else OTHER)
    if candidate.rows >= held.rows or candidate.ids is None:
        return OTHER
    ids = ids_of(version.run_id)  # the version's whole population, read only when needed
    if ids is None:
        return UNKNOWN
    return FEWER if np.isin(np.asarray(candidate.ids, dtype="int64"), ids).all() else OTHER
