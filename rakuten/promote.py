"""The Model Registry: register a run's model and decide who is `champion`.

The rule: a new version takes `champion` only if its `test_f1_weighted` beats the champion's on
the same data. When the champion was scored on other data (another data fingerprint), it is
scored again on the new run's test part, through its own pyfunc, so both numbers are comparable;
a champion refitted on every labelled row of its data (tag `refit_rows`) may have trained on that
test part, so its recipe (its pipeline, unfitted) is first trained on the new run's training part.
A worse model never takes `champion`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rakuten.track import muted

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC = "test_f1_weighted"
MAX_PROMOTION_ROUNDS = 10


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    champion_score: float | None = None


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
        name, version.version, description=f"{summary}\n{scores}\ndata_fingerprint={fingerprint}"
    )
    client.set_tag(version.run_id, "registered_version", str(version.version))
    return version


def current_champion(name: str):
    """The version holding `champion`, or None."""
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def best_version(name: str, fingerprint: str, version: str, score: float) -> tuple[str, float]:
    """The best version of `name` scored on `fingerprint` (ties: the oldest), `version` included."""
    scored = {str(version): float(score)}
    for found in MlflowClient().search_model_versions(f"name='{name}'"):
        if found.tags.get("data_fingerprint") == fingerprint and METRIC in found.tags:
            scored.setdefault(str(found.version), float(found.tags[METRIC]))
    return max(scored.items(), key=lambda item: (item[1], -int(item[0])))


def promote_if_better(
    name: str, version: str, score: float, fingerprint: str, rescore: Callable[[str, bool], float]
) -> Decision:
    """Point `champion` at the best version on this data if it beats the champion.

    `rescore(model_uri, retrain)` scores another model on this run's test part (`retrain`: its
    recipe trained on this run's training part first); it is called only when the champion was
    evaluated on other data. Safe under concurrent jobs without a lock: each job
    registers before it promotes and, after every write of the alias, re-reads the registry and
    writes again until the alias holds the best version it sees. Whichever job writes last has
    thus checked, after its write, every version registered before; a version registered later
    is checked by its own job.
    """
    client = MlflowClient()
    rescored: dict[str, float] = {}
    first_look = None
    for _ in range(MAX_PROMOTION_ROUNDS):
        best, best_score = best_version(name, fingerprint, version, score)
        champion = current_champion(name)
        if champion is None:
            first_look = first_look or Decision(best == str(version), "there was no champion")
        elif str(champion.version) == best:
            first_look = first_look or (
                Decision(True, f"v{best} is already champion", best_score) if best == str(version) else
                Decision(False, f"{score:.4f} does not beat champion v{best} ({best_score:.4f}, its logged score)",
                         best_score))
            break
        else:
            try:
                champion_score, where = _champion_score(champion, fingerprint, rescore, rescored)
            except Exception as error:  # a champion that cannot be scored here is kept, never replaced
                return Decision(False, f"champion v{champion.version} could not be scored on this data: {error}")
            verb = "beats" if score > champion_score else "does not beat"
            first_look = first_look or Decision(
                score > champion_score,
                f"{score:.4f} {verb} champion v{champion.version} ({champion_score:.4f}, {where})", champion_score)
            if best_score <= champion_score:
                break
        try:
            client.set_registered_model_alias(name, CHAMPION, best)
        except MlflowException:  # another job wrote the alias at the same instant (a unique-key clash)
            continue  # re-read and decide again
    final = current_champion(name)
    promoted = final is not None and str(final.version) == str(version)
    if promoted == first_look.promoted:
        return first_look
    return Decision(promoted, f"{first_look.reason}; v{final.version} is champion after concurrent promotions",
                    first_look.champion_score)


def _champion_score(champion, fingerprint: str, rescore, rescored: dict) -> tuple[float, str]:
    """The champion's score on `fingerprint`: its own when it was scored there, else rescored."""
    if champion.tags.get("data_fingerprint") == fingerprint and METRIC in champion.tags:
        return float(champion.tags[METRIC]), "its logged score"
    refitted = "refit_rows" in champion.tags
    if str(champion.version) not in rescored:
        rescored[str(champion.version)] = rescore(f"models:/{champion.name}/{champion.version}", refitted)
    return rescored[str(champion.version)], ("its recipe retrained and scored on this split" if refitted
                                             else "rescored on this test part")


def versions_of_run(name: str, run_id: str) -> list:
    return MlflowClient().search_model_versions(f"name='{name}' and run_id='{run_id}'")


def ranking(experiment: str, modality: str, fingerprint: str | None, metric: str = METRIC) -> tuple[list, str]:
    """Finished runs with `modality` and a logged model, best first, on one data fingerprint (by
    default that of the newest such run): the runs of `experiment`, and the run of every version of
    the registered model, whichever experiment it is in (`mlflow run .` logs into `Default`)."""
    found = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.modality = '{modality}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    seen = {r.info.run_id for r in found}
    client = MlflowClient()
    for version in client.search_model_versions(f"name='{registry_name(modality)}'"):
        if version.run_id and version.run_id not in seen:
            seen.add(version.run_id)
            registered = client.get_run(version.run_id)
            if registered.info.status == "FINISHED" and registered.data.tags.get("modality") == modality:
                found.append(registered)
    found = sorted((r for r in found if metric in r.data.metrics and "data_fingerprint" in r.data.tags),
                   key=lambda r: r.info.start_time, reverse=True)
    if not found:
        raise LookupError(f"no finished {modality} run with {metric} in experiment {experiment!r} "
                          f"nor behind a version of {registry_name(modality)}")
    fingerprint = fingerprint or found[0].data.tags["data_fingerprint"]
    same_data = [r for r in found if r.data.tags["data_fingerprint"] == fingerprint]
    if not same_data:
        raise LookupError(f"no {modality} run on data fingerprint {fingerprint} in experiment {experiment!r}")
    return sorted(same_data, key=lambda r: r.data.metrics[metric], reverse=True), fingerprint


def format_ranking(ranked: list, metric: str, champion_run_id: str | None) -> str:
    lines = [f"{'rank':>4}  {'run':8}  {'model':14} {'resampler':12} {metric:>16} {'fit_seconds':>11}  version"]
    for rank, found in enumerate(ranked, 1):
        tags, metrics = found.data.tags, found.data.metrics
        mark = "  <- champion" if found.info.run_id == champion_run_id else ""
        lines.append(
            f"{rank:>4}  {found.info.run_id[:8]}  {tags.get('model', '?'):14} {tags.get('resampler', '?'):12} "
            f"{metrics[metric]:>16.4f} {metrics.get('fit_seconds', float('nan')):>11.1f}  "
            f"{tags.get('registered_version', '-')}{mark}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m rakuten.promote`: rank runs, register the best, point champion and challenger."""
    import argparse
    import sys

    from rakuten import runs, track

    parser = argparse.ArgumentParser(description="Rank runs by a metric and promote the best to champion.")
    parser.add_argument("--experiment", default="rakuten")
    parser.add_argument("--modality", default="text", choices=["text", "image", "fusion"])
    parser.add_argument("--fingerprint", default=None, help="data fingerprint to rank on (default: newest run's)")
    parser.add_argument("--dry-run", action="store_true", help="print the ranking and the decision, change nothing")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="MLflow's own console output too")
    args = parser.parse_args(argv)
    track.set_console(verbose=args.verbose)
    try:
        mlflow.set_tracking_uri(track.resolve_tracking_uri(args.tracking_uri))
        name = registry_name(args.modality)
        ranked, fingerprint = ranking(args.experiment, args.modality, args.fingerprint)
        champion = current_champion(name)
        print(f"{len(ranked)} {args.modality} runs on data {fingerprint}, by {METRIC}:")
        print(format_ranking(ranked, METRIC, champion.run_id if champion else None))
        best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        if args.dry_run:
            print(f"dry run: would offer run {best.info.run_id[:8]} as champion"
                  + (f" and run {runner_up.info.run_id[:8]} as challenger" if runner_up else ""))
            return 0
        best_version = _registered(name, best)
        decision = promote_if_better(
            name, best_version, best.data.metrics[METRIC], fingerprint,
            rescore=lambda uri, refitted: runs.score_model(uri, runs.test_part(best.info.run_id), retrain=refitted),
        )
        print(f"{name} v{best_version}: {'champion' if decision.promoted else 'not promoted'} ({decision.reason})")
        if runner_up is not None:
            challenger = _registered(name, runner_up)
            MlflowClient().set_registered_model_alias(name, CHALLENGER, challenger)
            print(f"{name} v{challenger}: challenger")
    except (LookupError, MlflowException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _registered(name: str, found) -> str:
    """The version registered from this run, registering it first if needed."""
    existing = versions_of_run(name, found.info.run_id)
    if existing:
        return str(max(int(v.version) for v in existing))
    summary = f"{found.data.tags.get('model')} + resampler {found.data.tags.get('resampler')}, promoted by rakuten.promote"
    logged = mlflow.search_logged_models(
        experiment_ids=[found.info.experiment_id], filter_string=f"source_run_id = '{found.info.run_id}'",
        output_format="list",
    )
    if not logged:
        raise LookupError(f"run {found.info.run_id} logged no model")
    version = register(logged[0].model_uri, name, found.data.metrics,
                       found.data.tags["data_fingerprint"], summary)
    return str(version.version)


if __name__ == "__main__":
    raise SystemExit(main())
