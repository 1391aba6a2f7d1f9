"""`python -m rakuten.evaluate`: a registered (or logged) model scored on one's own labelled file.

`python -m rakuten.evaluate --model-uri models:/rakuten-text@champion X.csv Y.csv` reads the products
and their labels (the challenge's formats, joined by index), predicts them through the model's own
pyfunc, and logs an evaluation run in the experiment `rakuten-evaluations`: weighted F1 (`f1_weighted`,
the challenge's metric), macro F1 and accuracy, the per-class report and the confusion matrix, the
file as an MLflow dataset, the model and its version as tags; the version gets a tag
`evaluation.<file>` with the score and the run. It prints the weighted F1.

The scores come from `rakuten.evaluate` (this package), the code every training run is scored by, so an evaluation
reads exactly like a run's test scores. MLflow's own `mlflow.models.evaluate` was not used: its
classifier evaluator computes its own metric set (and needs its model output as a single column),
so its weighted F1 would be a second definition of the challenge's metric beside ours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from rakuten import data, defaults, evaluate
from rakuten.cli import command, load_model, open_store, store_options
from rakuten.predict import DEFAULT_MODEL_URI

EXPERIMENT = defaults.EVALUATIONS


def labelled_file(x_path: Path, y_path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The products of `x_path` and their labels from `y_path`, joined by index: every product needs one."""
    products, labels = data.read_products(x_path), data.read_labels(y_path)
    unlabelled = products.index.difference(labels.index)
    if len(unlabelled):
        raise data.DataError(f"{len(unlabelled)} of {len(products)} products of {x_path} have no label in {y_path} "
                             f"(first indices: {list(unlabelled[:5])})")
    return products, labels.loc[products.index]


def version_of(uri: str):
    """The model version behind a `models:/name@alias` or `models:/name/N` URI, else None."""
    if not uri.startswith("models:/"):
        return None
    name, _, rest = uri.removeprefix("models:/").partition("/")
    client = MlflowClient()
    if "@" in name:
        name, alias = name.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    return client.get_model_version(name, rest) if rest.isdigit() else None


def check_labels(model, labels: pd.Series, args) -> None:
    """Labels the model does not know are scored as errors, with a warning (refused with `--strict`)."""
    known = getattr(getattr(model.unwrap_python_model(), "predictor", None), "classes", None)
    unknown = labels[~labels.isin(known)] if known is not None else labels.iloc[:0]
    if len(unknown):
        said = (f"{len(unknown):,} of {len(labels):,} rows of {args.y_file} have labels {args.model_uri} does not "
                f"know ({', '.join(map(str, sorted(unknown.unique())[:5]))}): scored as errors")
        if args.strict:
            raise data.DataError(f"{said}; without --strict they are scored")
        print(f"warning: {said} (--strict refuses them)", file=sys.stderr, flush=True)


def seen_rows(model_uri: str, index: pd.Index) -> pd.Index | None:
    """The rows of `index` the model learned from (its run's training part, and its test part when it
    was refitted on every row); None when its run's data cannot be read back to tell."""
    from rakuten import logged_runs, recipes

    try:
        run_id = logged_runs.model_run_id(model_uri)
        parts = recipes.test_part(run_id)
    except Exception:  # noqa: BLE001 - a model of a run whose data folder is gone: said, not fatal
        return None
    learned = parts.X_train.index.union(parts.X_test.index) if logged_runs.refitted(run_id) else parts.X_train.index
    return index.intersection(learned)


def say_seen(seen: pd.Index | None, labels: pd.Series, predicted, model_uri: str) -> dict[str, float]:
    """A warning when the model learned some of these rows, and the scores on the others (when any)."""
    if seen is None:
        print(f"note: whether {model_uri} learned some of these rows cannot be told (its run's data is not here)",
              file=sys.stderr, flush=True)
        return {}
    if not len(seen):
        return {}
    unseen = ~labels.index.isin(seen)
    said = f"warning: {model_uri} learned {len(seen):,} of these {len(labels):,} rows: their score flatters it"
    if not unseen.any():
        print(f"{said}; no row is unseen, so no honest score here", file=sys.stderr, flush=True)
        return {}
    scores = evaluate.score(labels[unseen], predicted[unseen], prefix="unseen_")
    print(f"{said}; on the {unseen.sum():,} unseen rows f1_weighted={scores['unseen_f1_weighted']:.4f}",
          file=sys.stderr, flush=True)
    return scores


@command
def main(argv: list[str] | None = None) -> int:
    from rakuten import tracking

    parser = argparse.ArgumentParser(parents=[store_options(DEFAULT_MODEL_URI)], prog="python -m rakuten.evaluate",
                                     description="Score a model on a labelled file and log the evaluation.")
    parser.add_argument("x_file", type=Path, help="products, in X_train_update.csv's format (plain or .gz)")
    parser.add_argument("y_file", type=Path, help="their labels, in Y_train_CVw08PX.csv's format, joined by index")
    parser.add_argument("--images-dir", default="", help="pictures of the products (image and fusion models)")
    parser.add_argument("--experiment", default=EXPERIMENT)
    parser.add_argument("--strict", action="store_true",
                        help="refuse labels the model does not know (default: a warning with their count)")
    args = parser.parse_args(argv)
    tracking.set_console(verbose=args.verbose)
    products, labels = labelled_file(args.x_file, args.y_file)
    uri = open_store(args.tracking_uri)
    model = load_model(args.model_uri)
    version = version_of(args.model_uri)
    print(f"scoring {len(products):,} products of {args.x_file} with {args.model_uri} ...", flush=True)
    params = {"images_dir": args.images_dir} if args.images_dir else None
    wanted = model.metadata.get_input_schema().input_names() if model.metadata.get_input_schema() else None
    rows = products[[c for c in products.columns if c in wanted]] if wanted else products
    check_labels(model, labels, args)
    seen = seen_rows(args.model_uri, products.index)
    predicted = model.predict(rows, params=params)["prdtypecode"].to_numpy()
    classes = sorted(set(labels) | set(predicted))
    scores = evaluate.score(labels, predicted, prefix="")
    unseen = say_seen(seen, labels, predicted, args.model_uri)
    report_dict, report_text = evaluate.report(labels, predicted, classes)
    title = f"{args.model_uri} on {args.x_file.name}: weighted F1 {scores['f1_weighted']:.4f}"
    model_tags = {"evaluated_model": args.model_uri, "evaluated_file": str(args.x_file)}
    if version is not None:
        model_tags.update(evaluated_version=f"{version.name} v{version.version}", evaluated_run=version.run_id or "")
    mlflow.set_experiment(experiment_id=tracking.ensure_experiment(args.experiment, tracking.sqlite_path(uri)))
    with tracking.run(f"evaluate-{args.x_file.stem}", model_tags) as active:
        with tracking.muted():
            mlflow.log_input(mlflow.data.from_pandas(products.assign(prdtypecode=labels.to_numpy()),
                                                     source=str(args.x_file.resolve()), targets="prdtypecode",
                                                     name=f"file-{args.x_file.stem}"), context="evaluation")
        tracking.log_evaluation({**tracking.readable({**scores, **unseen}), "rows": len(products),
                                 "seen_rows": len(seen) if seen is not None else -1}, report_dict, report_text, {
            "confusion_matrix": evaluate.plot_confusion_matrix(labels, predicted, classes, title)})
    if version is not None:
        MlflowClient().set_model_version_tag(
            version.name, version.version, f"evaluation.{args.x_file.name}",
            f"f1_weighted={scores['f1_weighted']:.4f} ({len(products)} rows; run {active.info.run_id})")
    print(f"f1_weighted={scores['f1_weighted']:.4f} f1_macro={scores['f1_macro']:.4f} "
          f"accuracy={scores['accuracy']:.4f} on {len(products):,} rows | evaluation run {active.info.run_id[:8]} "
          f"in experiment {args.experiment}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
