"""`python -m rakuten.promote`: rank the finished runs of an experiment, register the best if needed,
point `champion` (under the rule of `rakuten.champion`), `challenger` and `fast`.

The rule itself, and registering, live in `rakuten.champion`.
"""

from __future__ import annotations

from dataclasses import replace

import mlflow
from mlflow import MlflowClient

from rakuten.champion import (CHALLENGER, CHAMPION, FAST, FAST_BUDGET_MS, METRIC, MODALITIES, current_champion,
                              promote_fast, promote_if_better, register, registry_name)
from rakuten.cli import command, open_store, store_options
from rakuten.data_identity import DataOf, population_ids


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


@command
def main(argv: list[str] | None = None) -> int:
    """`python -m rakuten.promote`: rank runs, register the best, point champion and challenger.
    What it prints, what `--dry-run` says first and what the registry holds afterwards agree: both
    go through `promote_if_better`, the dry run writing nothing."""
    import argparse

    from rakuten import recipes, runs, tracking

    parser = argparse.ArgumentParser(parents=[store_options()], prog="python -m rakuten.promote",
                                     description="Rank runs by a metric and promote the best to champion.")
    parser.add_argument("--experiment", default="rakuten")
    parser.add_argument("--modality", default="text", choices=MODALITIES)
    parser.add_argument("--fingerprint", default=None, help="data fingerprint to rank on (default: newest run's)")
    parser.add_argument("--dry-run", action="store_true", help="print the ranking and the decision, change nothing")
    parser.add_argument("--fast-budget-ms", type=float, default=FAST_BUDGET_MS,
                        help=f"alias {FAST}: the best version predicting a batch within this many ms a row")
    args = parser.parse_args(argv)
    tracking.set_console(verbose=args.verbose)
    open_store(args.tracking_uri)
    name = registry_name(args.modality)
    ranked, fingerprint = ranking(args.experiment, args.modality, args.fingerprint)
    champion = current_champion(name)
    print(f"{len(ranked)} {args.modality} runs on data {fingerprint}, by {METRIC}:")
    print(format_ranking(ranked, METRIC, champion.run_id if champion else None))
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    version, version_uri = _registered(name, best, dry_run=args.dry_run)
    data = DataOf.of_tags(best.data.tags)
    if data is not None:
        ids = population_ids(best.info.run_id)
        data = replace(data, ids=None if ids is None else tuple(int(i) for i in ids))
    decision = promote_if_better(
        name, version, best.data.metrics[METRIC], fingerprint,
        rescore=lambda uri, refitted: runs.score_model(uri, recipes.test_part(best.info.run_id), retrain=refitted),
        dry_run=args.dry_run, check_champion=True, version_uri=version_uri, data=data)
    would = "would be" if args.dry_run else "is"
    lost = champion is not None and "does not load" in decision.reason and f"v{champion.version}" in decision.reason
    print(f"{'dry run: ' if args.dry_run else ''}{name} v{version}: "
          f"{'champion' if decision.promoted else 'not promoted'} ({decision.reason}); run {best.info.run_id[:8]}")
    if not args.dry_run:
        holder = current_champion(name)
        print(f"{name}@{CHAMPION} {would} v{holder.version}" if holder else f"{name} has no {CHAMPION}")
    if runner_up is not None and not args.dry_run:
        challenger, _ = _registered(name, runner_up)
        MlflowClient().set_registered_model_alias(name, CHALLENGER, challenger)
        print(f"{name} v{challenger}: challenger")
    if not args.dry_run:
        print(promote_fast(name, args.fast_budget_ms))
    return 2 if lost else 0


def _registered(name: str, found, dry_run: bool = False) -> tuple[str, str | None]:
    """The version registered from this run, registering it first if needed (a dry run: the
    number it would get, and its logged model's URI)."""
    existing = versions_of_run(name, found.info.run_id)
    if existing:
        return str(max(int(v.version) for v in existing)), None
    summary = f"{found.data.tags.get('model')} + resampler {found.data.tags.get('resampler')}, promoted by rakuten.promote"
    logged = mlflow.search_logged_models(
        experiment_ids=[found.info.experiment_id], filter_string=f"source_run_id = '{found.info.run_id}'",
        output_format="list",
    )
    if not logged:
        raise LookupError(f"run {found.info.run_id} logged no model")
    if dry_run:
        numbers = [int(v.version) for v in MlflowClient().search_model_versions(f"name='{name}'")]
        return str(max(numbers, default=0) + 1), logged[0].model_uri
    data = DataOf.of_tags(found.data.tags)
    version = register(logged[0].model_uri, name, found.data.metrics,
                       found.data.tags["data_fingerprint"], summary, tags=data.tags() if data else None)
    return str(version.version), None


if __name__ == "__main__":
    raise SystemExit(main())
