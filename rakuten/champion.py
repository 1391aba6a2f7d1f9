"""The Model Registry: register a run's model and decide who is `champion` and `fast`.

The registry serves data, not runs. Every version records the data it learned from (`DataOf`):
which products its data folder offered (the ids, digested as `data_population`, kept whole in the
run's `data/population.npy`) and how many of them it drew (`data_rows`: fewer with `data.max_rows`).
A candidate's data, held against the champion's (`relation`), is
- `fewer`: its ids are among the champion's and it drew fewer rows (a `data.max_rows` smoke run, the
  sample after the full data): it never takes `champion` or `fast`;
- `same`: the same products and as many rows: recipe against model as always: the candidate takes
  `champion` only if its `test_f1_weighted` beats the champion's on its split (the champion is
  rescored on that test part when it was scored on another split; a champion refitted on every
  labelled row, tag `refit_rows`, has its recipe retrained on the split's training part first);
- `other`: new products, or more rows of them (the full data after the sample, a new export):
  recipe against recipe on the candidate's split (the champion's recipe retrained there), and the
  registry ends with a model fitted on that data: the candidate when it wins, else the champion's
  recipe trained on that data by a run of its own (`rakuten.recipes.base`), which takes `champion`.
`fast` is the best version of the champion's data whose measured cost per row is within the budget;
with none, the alias is removed rather than left on other data.
A worse model never takes `champion`, nor does a version whose run failed (FAILED, KILLED, or
RUNNING with its process gone) or whose model does not load and predict its own input example (a
few rows of its test part, logged with it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rakuten.data_identity import FEWER, OTHER, SAME, UNKNOWN, DataOf, relation, same_data
from rakuten.model_check import check, load_problem
from rakuten.tracking import alive_or_finished, muted, one_line, redact

CHAMPION = "champion"
CHALLENGER = "challenger"
FAST = "fast"  # the best version whose cost per row is within the budget
LATENCY_TAG = "latency_ms"  # one row alone, median
ROW_COST_TAG = "ms_per_row"  # in a batch of BATCH_ROWS rows: what decides `fast`
FAST_BUDGET_MS = 5.0
METRIC = "test_f1_weighted"
MODALITIES = ("text", "image", "fusion")  # one registered model each: rakuten-<modality>
MAX_PROMOTION_ROUNDS = 10




@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    champion_score: float | None = None
    relation: str = SAME  # the candidate's data against the champion's


def fewer_rows_reason(candidate: DataOf, holder) -> str:
    held = DataOf.of_tags(holder.tags)
    return (f"it learned from {candidate.describe()}, fewer rows of the data of champion v{holder.version} "
            f"({held.describe() if held else '?'}): a smoke run or a subset never takes {CHAMPION} or {FAST}")


def unknown_data_reason(candidate: DataOf, holder) -> str:
    from rakuten.tracking import POPULATION_ARTIFACT

    held = DataOf.of_tags(holder.tags)
    return (f"champion v{holder.version}'s run has lost {POPULATION_ARTIFACT}, so whether {candidate.describe()} is "
            f"part of its data ({held.describe() if held else '?'}) cannot be told: {CHAMPION} and {FAST} stay. To "
            f"repair: train again on the champion's data (its new version logs the ids), or move the alias by hand")


def registry_name(modality: str) -> str:
    return f"rakuten-{modality}"


def register(model_uri: str, name: str, metrics: dict[str, float], fingerprint: str, summary: str,
             tags: dict[str, str] | None = None):
    """Register `model_uri` as a new version of `name`, described by its metrics and data.

    The version carries its fingerprint and score as tags from the start: that is what concurrent
    promotions compare. `tags` adds others (`refit_rows`: refitted on every labelled row).
    """
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
    problem, latency, row_cost = check(f"models:/{name}/{version.version}")
    if not problem:  # what the `fast` alias is chosen by
        client.set_model_version_tag(name, version.version, LATENCY_TAG, f"{latency:.2f}")
        client.set_model_version_tag(name, version.version, ROW_COST_TAG, f"{row_cost:.3f}")
    return version


def markdown_text(text: str) -> str:
    """`text` shown as it is by the registry's Markdown view: no tag, link or picture made of it."""
    import html
    import re

    return re.sub(r"([\\`*_\[\](){}#+!|~-])", r"\\\1", html.escape(text, quote=False))


def current_champion(name: str):
    """The version holding `champion`, or None."""
    return _alias(name, CHAMPION)


def best_version(name: str, fingerprint: str, version: str, score: float,
                 refused: frozenset[str] = frozenset()) -> tuple[str | None, float]:
    """The best version of `name` scored on `fingerprint` (ties: the oldest), `version` included:
    of the others, only those whose run finished or whose job is still at work (concurrent jobs must
    see each other's versions to converge: `alive_or_finished`), never FAILED, KILLED or orphaned
    ones, and not those `refused` (found broken)."""
    client = MlflowClient()
    scored = {} if str(version) in refused else {str(version): float(score)}
    for found in client.search_model_versions(f"name='{name}'"):
        if (found.tags.get("data_fingerprint") == fingerprint and METRIC in found.tags
                and str(found.version) not in refused and str(found.version) not in scored
                and alive_or_finished(found.run_id)):
            scored[str(found.version)] = float(found.tags[METRIC])
    if not scored:
        return None, float("nan")
    return max(scored.items(), key=lambda item: (item[1], -int(item[0])))


@dataclass(frozen=True)
class _Simulated:
    """The alias as a dry run would leave it."""

    name: str
    version: str
    fingerprint: str
    score: float

    @property
    def tags(self) -> dict[str, str]:
        return {"data_fingerprint": self.fingerprint, METRIC: repr(self.score)}


def promote_fast(name: str, budget_ms: float = FAST_BUDGET_MS, version: str | None = None) -> str:
    """Point `fast` at the best version of the champion's data (`same_data`) whose cost per row in a
    batch (measured at registration) is within `budget_ms`, whose run finished (or is `version`, the
    caller's own) and that loads: what serves rows fast when the champion is a slow model. With no
    such version the alias is removed: it never stays on a model of other data. Returns what it did."""
    client = MlflowClient()
    holder = current_champion(name)
    if holder is None:
        return f"{name} has no {CHAMPION}: no {FAST} either"
    candidates = _within_budget(name, holder, budget_ms, version)
    current = _alias(name, FAST)
    for found in candidates:
        if load_problem(f"models:/{name}/{found.version}"):
            continue
        if current is None or str(current.version) != str(found.version):
            client.set_registered_model_alias(name, FAST, str(found.version))
        return f"{name}@{FAST} is v{found.version} ({float(found.tags[ROW_COST_TAG]):.2f} ms a row)"
    if current is not None:
        client.delete_registered_model_alias(name, FAST)
    held = DataOf.of_tags(holder.tags)
    return (f"no version of {name} on the champion's data ({held.describe() if held else 'v' + str(holder.version)})"
            f" predicts within {budget_ms:g} ms a row" + (f": {FAST} (was v{current.version}) removed" if current else ""))


def would_be_fast(name: str, model_uri: str, score: float, data: DataOf, budget_ms: float) -> bool:
    """Whether a model not registered yet would take `fast`: of the champion's data, within the
    budget (measured here, as at registration), and better than every version of that data within it."""
    holder = current_champion(name)
    if holder is None or relation(data, holder) != SAME:
        return False
    problem, _, row_cost = check(model_uri)
    if problem or not row_cost <= budget_ms:
        return False
    rivals = _within_budget(name, holder, budget_ms)
    return not rivals or score > float(rivals[0].tags[METRIC])


def _within_budget(name: str, holder, budget_ms: float, version: str | None = None) -> list:
    """The versions of the champion's data within the budget whose run finished (or is `version`,
    the caller's own), best first: what `fast` is chosen among."""
    return sorted(
        (v for v in MlflowClient().search_model_versions(f"name='{name}'")
         if same_data(v, holder) and METRIC in v.tags and ROW_COST_TAG in v.tags
         and float(v.tags[ROW_COST_TAG]) <= budget_ms and (str(v.version) == str(version) or alive_or_finished(v.run_id))),
        key=lambda v: (-float(v.tags[METRIC]), int(v.version)))


def take_champion(name: str, version: str) -> Decision:
    """Point `champion` at `version` once it loads: the champion's recipe retrained on new data."""
    problem = load_problem(f"models:/{name}/{version}")
    if problem:
        return Decision(False, f"v{version} does not load: {problem}")
    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))
    return Decision(True, "the champion's recipe, trained on this data")


def _alias(name: str, alias: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote_if_better(
    name: str, version: str, score: float, fingerprint: str, rescore: Callable[[str, bool], float],
    dry_run: bool = False, check_champion: bool = False, version_uri: str | None = None, verify: bool = True,
    data: DataOf | None = None,
) -> Decision:
    """Point `champion` at the best version on this data if it beats the champion.

    `rescore(model_uri, retrain)` scores another model on this run's test part (`retrain`: its
    recipe trained on this run's training part first); it is called only when the champion was
    evaluated on another split (`retrain` too when the candidate's `data` is `OTHER` than the
    champion's: recipe against recipe). A candidate whose `data` is `FEWER` rows of the champion's
    never takes the alias. A version is written to the alias only once it loads and predicts
    (`load_problem`); one that does not is passed over. `check_champion`: the champion too must load,
    else it loses the alias to the best version that does. `dry_run`: decide the same way, write
    nothing (`version_uri`: where the model of `version` is, when it is not registered yet;
    `verify=False`: assume the versions load, a quick look before registering).

    Safe under concurrent jobs without a lock: each job registers before it promotes and, after
    every write of the alias, re-reads the registry and writes again until the alias holds the
    best version it sees. Whichever job writes last has thus checked, after its write, every
    version registered before; a version registered later is checked by its own job.
    """
    client = MlflowClient()
    rescored: dict[str, float] = {}
    data_relations: dict[str, str] = {}  # champion version -> the candidate's data against its
    refused: dict[str, str] = {}  # version -> why it does not load
    first_look = None
    simulated = current_champion(name) if dry_run else None  # what the alias would hold
    uri = (lambda v: version_uri if v == str(version) and version_uri else f"models:/{name}/{v}")
    for _ in range(MAX_PROMOTION_ROUNDS):
        best, best_score = best_version(name, fingerprint, version, score, frozenset(refused))
        champion = simulated if dry_run else current_champion(name)
        if champion is not None and check_champion and str(champion.version) not in refused:
            broken = load_problem(uri(str(champion.version)))
            if broken:
                refused[str(champion.version)] = broken
                print(f"{name} v{champion.version} is champion but does not load: {broken}", file=sys.stderr)
                continue
        if best is None:
            first_look = first_look or Decision(False, f"v{version} does not load: {refused.get(str(version))}")
            break
        data_relation = SAME
        if data is not None and champion is not None and str(champion.version) not in refused:
            if str(champion.version) not in data_relations:  # asked once per champion (it may read the ids' artifact)
                data_relations[str(champion.version)] = relation(data, champion) if str(champion.version) != str(version) else SAME
            data_relation = data_relations[str(champion.version)]
            if data_relation in (FEWER, UNKNOWN):  # missing evidence never demotes either
                reason = fewer_rows_reason(data, champion) if data_relation == FEWER else unknown_data_reason(data, champion)
                return Decision(False, reason, relation=data_relation)
        if champion is None or str(champion.version) in refused:
            lost = "" if champion is None else f"champion v{champion.version} does not load"
            first_look = first_look or Decision(best == str(version), lost or "there was no champion")
        elif str(champion.version) == best:
            first_look = first_look or (
                Decision(True, f"v{best} is already champion", best_score) if best == str(version) else
                Decision(False, f"{score:.4f} does not beat champion v{best} ({best_score:.4f}, its logged score)",
                         best_score))
            break
        else:
            try:
                champion_score, where = _champion_score(champion, fingerprint, rescore, rescored, data_relation)
            except Exception as error:  # a champion that cannot be scored here is kept, never replaced
                if data_relation != OTHER:
                    return Decision(False, f"champion v{champion.version} could not be scored on this data: {error}")
                # on new data the registry must end with a model of that data: the candidate
                champion_score, where = float("-inf"), f"its recipe cannot be trained here: {one_line(error, 200)}"
                rescored[str(champion.version)] = champion_score
            verb = "beats" if score > champion_score else "does not beat"
            held = DataOf.of_tags(champion.tags)
            new_data = (f"on new data ({data.describe()}; champion v{champion.version} learned from "
                        f"{held.describe() if held else 'other data'}): ") if data_relation == OTHER else ""
            first_look = first_look or Decision(
                score > champion_score,
                f"{new_data}{score:.4f} {verb} champion v{champion.version} ({champion_score:.4f}, {where})",
                champion_score, data_relation)
            if best_score <= champion_score:
                break
        broken = load_problem(uri(best)) if verify else ""
        if broken:
            refused[best] = broken
            first_look = None if best != str(version) else Decision(False, f"v{version} does not load: {broken}")
            continue
        if dry_run:
            simulated = _Simulated(name, best, fingerprint, best_score)
            continue
        try:
            client.set_registered_model_alias(name, CHAMPION, best)
        except MlflowException:  # another job wrote the alias at the same instant (a unique-key clash)
            continue  # re-read and decide again
    if first_look is None:
        return Decision(False, "no version of this data loads")
    final = simulated if dry_run else current_champion(name)
    promoted = final is not None and str(final.version) == str(version)
    if promoted == first_look.promoted:
        return first_look
    now = f"v{final.version} is champion" if final is not None else "no version is champion"
    return Decision(promoted, f"{first_look.reason}; {now} after concurrent promotions", first_look.champion_score)


PENDING = str(10**9)  # the number a version not registered yet plays under in a dry run


def would_be_champion(name: str, model_uri: str, score: float, fingerprint: str,
                      rescore: Callable[[str, bool], float], data: DataOf | None = None) -> Decision:
    """Whether a model not registered yet would take `champion` (a dry run, without loading it)."""
    return promote_if_better(name, PENDING, score, fingerprint, rescore, dry_run=True, version_uri=model_uri,
                             verify=False, data=data)


def _champion_score(champion, fingerprint: str, rescore, rescored: dict, data_relation: str = SAME) -> tuple[float, str]:
    """The champion's score on `fingerprint`: its own when it was scored there, else rescored (its
    recipe retrained on the split's training part when it was refitted on every row, or when the
    candidate's data is `OTHER`)."""
    if champion.tags.get("data_fingerprint") == fingerprint and METRIC in champion.tags:
        return float(champion.tags[METRIC]), "its logged score"
    retrain = "refit_rows" in champion.tags or data_relation == OTHER
    if str(champion.version) not in rescored:
        rescored[str(champion.version)] = rescore(f"models:/{champion.name}/{champion.version}", retrain)
    return rescored[str(champion.version)], ("its recipe retrained and scored on this split" if retrain
                                             else "rescored on this test part")
