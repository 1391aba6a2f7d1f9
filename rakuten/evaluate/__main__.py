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
    known = getattr(getattr(model.unwrap_python_model(), "predictor", None), "classes", None)
    unknown = labels[~labels.isin(known)] if known is not None else labels.iloc[:0]
    if len(unknown):
        said = (f"{len(unknown):,} of {len(labels):,} rows of {args.y_file} have labels {args.model_uri} does not "
                f"know ({', '.join(map(str, sorted(unknown.unique())[:5]))}): scored as errors")
        if args.strict:
            raise data.DataError(f"{said}; without --strict they are scored")
        print(f"warning: {said} (--strict refuses them)", file=sys.stderr, flush=True)
    predicted = model.predict(rows, params=params)["prdtypecode"].to_numpy()
    classes = sorted(set(labels) | set(predicted))
    scores = evaluate.score(labels, predicted, prefix="")
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
        tracking.log_evaluation({**tracking.readable(scores), "rows": len(products)}, report_dict, report_text, {
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
