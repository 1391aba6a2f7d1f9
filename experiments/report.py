"""Report of a study: its runs as a markdown table and a bar chart, beside the seed's numbers.

    python experiments/report.py --experiment seed-models
    python experiments/report.py --experiment seed-resampling --output reports/

Reads the finished top-level runs of the experiment (search candidates and earlier summaries are
left out), writes `report.md` and `report.png`, and logs both as artifacts of a `summary` run of
that experiment. The seed's published figures (seed_results.yaml) were measured on 68k+ products:
they sit beside ours for reference, not as a like-for-like comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from rakuten import tracking  # noqa: E402
from rakuten.cli import command, open_store  # noqa: E402

SEED_RESULTS = Path(__file__).with_name("seed_results.yaml")


def study_runs(experiment: str) -> pd.DataFrame:
    """One row per finished configuration run of the study."""
    found = tracking.find_runs(experiment, "attributes.status = 'FINISHED'")
    if found.empty:
        raise LookupError(f"no finished runs in experiment {experiment!r}")
    found = found[found.get("tags.mlflow.parentRunId", pd.Series(index=found.index, dtype=object)).isna()]
    found = found[found.get("tags.run_type", pd.Series(index=found.index, dtype=object)).fillna("") != "summary"]
    if "metrics.test_f1_weighted" not in found.columns or found.empty:
        raise LookupError(f"no training runs in experiment {experiment!r}")
    defaults = found.get("params.model.sklearn_defaults", pd.Series("False", index=found.index)).fillna("False")
    table = pd.DataFrame({
        "model": found["tags.model"],
        "resampler": found["tags.resampler"],
        "hyperparameters": ["library defaults" if str(d).lower() == "true" else "tuned (config)" for d in defaults],
        "search": found.get("tags.search", pd.Series("none", index=found.index)).fillna("none"),
        "test_f1_weighted": found["metrics.test_f1_weighted"],
        "test_accuracy": found["metrics.test_accuracy"],
        "fit_seconds": found["metrics.fit_seconds"],
        "run_id": found["run_id"],
        "data_fingerprint": found["tags.data_fingerprint"],
    })
    return table.sort_values("test_f1_weighted", ascending=False).reset_index(drop=True)


def with_seed_numbers(table: pd.DataFrame, seed_results: dict) -> pd.DataFrame:
    published = seed_results.get("text", {})
    table = table.copy()
    table["seed_f1_weighted"] = [
        published.get(f"{m}/{r}/{'default' if h.startswith('library') else 'tuned'}") for m, r, h in
        zip(table["model"], table["resampler"], table["hyperparameters"])
    ]
    return table


def to_markdown(table: pd.DataFrame, experiment: str) -> str:
    fingerprints = sorted(table["data_fingerprint"].unique())
    lines = [
        f"# Study `{experiment}`",
        "",
        f"{len(table)} runs; data fingerprint(s): {', '.join(fingerprints)}. Seed figures: measured by the seed",
        "on 68k+ products (challenge data), shown for reference only; '-' where it published none.",
        "",
        "| model | resampler | hyperparameters | search | test_f1_weighted | test_accuracy | fit_seconds | seed's f1_weighted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        seed = f"{row.seed_f1_weighted:.4f}" if pd.notna(row.seed_f1_weighted) else "-"
        lines.append(f"| {row.model} | {row.resampler} | {row.hyperparameters} | {row.search} | "
                     f"{row.test_f1_weighted:.4f} | {row.test_accuracy:.4f} | {row.fit_seconds:.1f} | {seed} |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, experiment: str):
    labels = [f"{m} / {r} / {'default' if h.startswith('library') else 'tuned'}"
              for m, r, h in zip(table["model"], table["resampler"], table["hyperparameters"])]
    height = max(4.0, 0.32 * len(table) + 1.5)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    positions = range(len(table))
    left.barh(positions, table["test_f1_weighted"], color="tab:blue", label="this project")
    seed = table["seed_f1_weighted"]
    if seed.notna().any():
        left.scatter(seed, positions, color="tab:red", marker="D", zorder=3, label="seed (68k+ rows)")
    left.set_yticks(list(positions), labels, fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("test weighted F1")
    left.legend(loc="lower right")
    right.barh(positions, table["fit_seconds"], color="tab:orange")
    right.set_xlabel("fit seconds")
    figure.suptitle(f"Study {experiment}")
    figure.tight_layout()
    return figure


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--output", type=Path, default=None, help="also write report.md/report.png here")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    open_store(args.tracking_uri)
    table = with_seed_numbers(study_runs(args.experiment), yaml.safe_load(SEED_RESULTS.read_text()))
    markdown = to_markdown(table, args.experiment)
    figure = plot(table, args.experiment)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(args.output) if args.output else Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.md").write_text(markdown)
        figure.savefig(folder / "report.png", dpi=110)
        tracking.log_summary_run(f"summary-{args.experiment}", args.experiment, tags={"run_type": "summary"},
                              metrics={"runs": len(table)}, files={"report.md": markdown},
                              figures={"report": figure})
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
