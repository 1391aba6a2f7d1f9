"""`python -m rakuten.promote`: rank the finished runs of an experiment, register the best if needed,
point `champion` (under the registry's rule, `rakuten.registry.rule`), `challenger` and `fast`.
"""

from __future__ import annotations

from dataclasses import replace

import mlflow
from mlflow import MlflowClient

from rakuten import registry
from rakuten.registry import CHALLENGER, CHAMPION, FAST, METRIC, MODALITIES, current_champion, register, registry_name
from rakuten.cli import command, open_store, store_options
from rakuten.data_of import DataOf
from rakuten.data_identity import population_ids


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
    go through the registry's rule, the dry run carrying out nothing."""
    import argparse

    from rakuten import defaults, tracking
    from rakuten.cli import ExitStatus

    parser = argparse.ArgumentParser(parents=[store_options()], prog="python -m rakuten.promote",
                                     description="Rank runs by a metric and promote the best to champion.")
    parser.add_argument("--experiment", default=defaults.EXPERIMENT)
    parser.add_argument("--modality", default="text", choices=MODALITIES)
    parser.add_argument("--fingerprint", default=None, help="data fingerprint to rank on (default: newest run's)")
    parser.add_argument("--dry-run", action="store_true", help="print the ranking and the decision, change nothing")
    parser.add_argument("--fast-budget-ms", type=float, default=defaults.FAST_BUDGET_MS,
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
    candidate, rows = _candidate(best, version, version_uri, fingerprint)  # a dry run's: the number it would get
    policy = registry.Policy(args.fast_budget_ms)
    if args.dry_run:
        contest = registry.held_against(name, candidate, rows, policy.fast_budget_ms, verify_champion=True)
        action = registry.decide(candidate, contest, policy)
        promoted, reason = action.champion, action.reason
    else:
        outcome, _, contest = registry.propose(name, candidate, rows, policy, None, verify_champion=True)
        promoted, reason = outcome.champion, outcome.reason
    print(f"{'dry run: ' if args.dry_run else ''}{name} v{version}: "
          f"{'champion' if promoted else 'not promoted'} ({reason}); run {best.info.run_id[:8]}")
    if not args.dry_run:
        holder = current_champion(name)
        print(f"{name}@{CHAMPION} is v{holder.version}" if holder else f"{name} has no {CHAMPION}")
    if runner_up is not None and not args.dry_run:
        challenger, _ = _registered(name, runner_up)
        MlflowClient().set_registered_model_alias(name, CHALLENGER, challenger)
        print(f"{name} v{challenger}: challenger")
    if not args.dry_run:
        print(registry.update_fast(name, args.fast_budget_ms))
    return ExitStatus.USER_ERROR if contest.lost else ExitStatus.OK


def _candidate(best, version: str, version_uri: str | None, fingerprint: str):
    """The best run as the registry's candidate, and its test rows (rebuilt from its logged config)."""
    from rakuten import logged_runs, recipes
    from rakuten.model_check import load_problem
    from rakuten.tracking import logged_test_predictions

    data = DataOf.of_tags(best.data.tags)
    if data is not None:
        ids = population_ids(best.info.run_id)
        data = replace(data, ids=None if ids is None else tuple(int(i) for i in ids))
    problem = load_problem(version_uri) if version_uri else ""
    candidate = registry.Candidate(best.data.metrics[METRIC], fingerprint, data, problem=problem, number=version)
    parts = recipes.test_part(best.info.run_id)
    rows = registry.TestRows(parts.y_test.to_numpy(), parts.X_test.index.to_numpy(),
                             logged_test_predictions(best.info.run_id, parts.X_test.index.to_numpy()),
                             registry.memoized(lambda uri, retrain: logged_runs.predict_test_part(uri, parts, retrain)))
    return candidate, rows


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
