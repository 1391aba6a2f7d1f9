"""`python -m rakuten.leaderboard`: the contest of each dataset, best first.

A dataset is what a run's data is called in the runs table (`rakuten-sample`, `rakuten-full`,
`rakuten-full-images`...: picture and fusion runs are named apart, so one dataset is one modality).
Only training jobs count: finished runs with a `test_f1_weighted` and a modality; search
candidates and study folds live under their parent run. Each line: run, weighted F1 (and its
cross-validated mean ± std where the run has one), rows drawn, fit seconds, milliseconds a row (measured at
registration), registered version and its aliases; under each table, the weakest classes of its
best run, with their names.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient

from rakuten.registry.versions import GAIN_CI_TAG, GAIN_TAG, METRIC, MODALITIES, ROW_COST_TAG, registry_name
from rakuten import defaults
from rakuten.classes import labelled
from rakuten.cli import ExitStatus, command, open_store, store_options
from rakuten.tracking import dataset_name, muted


@dataclass(frozen=True)
class Entry:
    run_id: str
    name: str
    dataset: str
    modality: str
    f1: float
    cv: str
    fit_seconds: float
    rows: str  # rows drawn from the dataset (fewer: a `data.max_rows` run)
    ms_per_row: str
    version: str  # 'v3 champion, fast', or '-'
    gain: str = "-"  # its newest version's gain over the champion it was held against, with the 95% interval


def entries(experiment: str) -> list[Entry]:
    """The experiment's finished training runs, with their registered versions and aliases."""
    found = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                               output_format="list")
    client = MlflowClient()
    versions: dict[str, list] = defaultdict(list)
    for modality in {r.data.tags.get("modality") for r in found} - {None}:
        aliases = defaultdict(list)
        try:
            for alias, number in client.get_registered_model(registry_name(modality)).aliases.items():
                aliases[str(number)].append(alias)
        except mlflow.exceptions.MlflowException:  # nothing registered for this modality
            continue
        for version in client.search_model_versions(f"name='{registry_name(modality)}'"):
            versions[version.run_id].append((version, sorted(aliases[str(version.version)])))
    table = []
    for run in found:
        tags, metrics = run.data.tags, run.data.metrics
        if METRIC not in metrics or "modality" not in tags:
            continue
        mine = sorted(versions.get(run.info.run_id, []), key=lambda pair: -int(pair[0].version))
        cv = (f"{metrics['cv_f1_weighted_mean']:.4f} ± {metrics['cv_f1_weighted_std']:.4f}"
              if "cv_f1_weighted_mean" in metrics and "cv_f1_weighted_std" in metrics else "")
        table.append(Entry(
            run.info.run_id, run.info.run_name or run.info.run_id[:8],
            tags.get("dataset") or dataset_name(tags.get("data_dir", "?"), tags["modality"]), tags["modality"],
            metrics[METRIC], cv, metrics.get("fit_seconds", float("nan")), tags.get("data_rows", "?"),
            mine[0][0].tags.get(ROW_COST_TAG, "-") if mine else "-",
            ", ".join(f"v{v.version}" + (f" {' '.join(a)}" if a else "") for v, a in mine) or "-",
            _gain(mine[0][0].tags) if mine else "-"))
    return table


def _gain(tags: dict) -> str:
    return f"{tags[GAIN_TAG]} {tags[GAIN_CI_TAG]}" if GAIN_TAG in tags and GAIN_CI_TAG in tags else "-"


def by_dataset(table: list[Entry]) -> dict[str, list[Entry]]:
    """Entries per dataset, best weighted F1 first (ties: the run listed first)."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in table:
        groups[entry.dataset].append(entry)
    return {name: sorted(rows, key=lambda e: -e.f1) for name, rows in sorted(groups.items())}


def format_group(dataset: str, rows: list[Entry], top: int, weakest: str = "") -> str:
    runs = "1 finished run" if len(rows) == 1 else f"{len(rows)} finished runs"
    lines = [f"{dataset} ({rows[0].modality}): {runs}, best first",
             f"{'rank':>4}  {'run':28} {METRIC:>16} {'cv (± std)':>17} {'rows':>6} {'fit_s':>8} {'ms/row':>9}  "
             f"{'gain (95% CI)':26} version"]
    for rank, e in enumerate(rows[:top], 1):
        lines.append(f"{rank:>4}  {e.name[:28]:28} {e.f1:>16.4f} {e.cv:>17} {e.rows:>6} {e.fit_seconds:>8.2f} "
                     f"{e.ms_per_row:>9}  {e.gain:26} {e.version}")
    if len(rows) > top:
        lines.append(f"      ... {len(rows) - top} more (--top)")
    if weakest:
        lines.append(f"      weakest classes of the best: {weakest}")
    return "\n".join(lines)


def weakest_classes(run_id: str, count: int = 3) -> str:
    """The classes of lowest F1 in a run's `classification_report.json`, named."""
    try:
        with muted():
            report = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/classification_report.json"))
    except Exception:  # noqa: BLE001 - an older run without its report: the table stands without it
        return ""
    classes = sorted(((values["f1-score"], int(code)) for code, values in report.items() if code.isdigit()))
    return ", ".join(f"{labelled(code)} {f1:.2f}" for f1, code in classes[:count])


@command
def main(argv: list[str] | None = None) -> int:
    from rakuten import tracking

    parser = argparse.ArgumentParser(parents=[store_options()], prog="python -m rakuten.leaderboard",
                                     description="The finished runs of each dataset, best weighted F1 first.")
    parser.add_argument("--experiment", default=defaults.EXPERIMENT)
    parser.add_argument("--dataset", default=None, help="one dataset (rakuten-sample, rakuten-full-images...)")
    parser.add_argument("--modality", default=None, choices=MODALITIES)
    parser.add_argument("--top", type=int, default=10, help="runs shown per dataset")
    args = parser.parse_args(argv)
    tracking.set_console(verbose=args.verbose)
    open_store(args.tracking_uri)
    if mlflow.MlflowClient().get_experiment_by_name(args.experiment) is None:
        print(f"no experiment {args.experiment!r} yet: train a model first")
        return ExitStatus.USER_ERROR
    groups = {name: rows for name, rows in by_dataset(entries(args.experiment)).items()
              if (args.dataset in (None, name)) and (args.modality in (None, rows[0].modality))}
    if not groups:
        print(f"no finished run in experiment {args.experiment!r}"
              + (f" on {args.dataset}" if args.dataset else "") + (f" ({args.modality})" if args.modality else ""))
        return ExitStatus.USER_ERROR if args.dataset or args.modality else ExitStatus.OK
    print("\n\n".join(format_group(name, rows, args.top, weakest_classes(rows[0].run_id))
                      for name, rows in groups.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
