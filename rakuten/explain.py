"""Why did a text model choose a class? LIME explanations, logged beside the model.

    python -m rakuten.explain --model-uri models:/rakuten-text@champion --n 5
    python -m rakuten.explain --index 1042 --index 77

Products are taken from a file (`--input`), or from the test part of the run that logged the model
(rebuilt from its `config.yaml`), by index or sampled; a model refitted on every labelled row has
seen those, which the command says. Each explanation is an HTML page and a PNG under
`explanations/` of that run.

LIME perturbs one string; a product has two fields, so both travel joined by a separator that
LIME's word splitter never touches, and are split back before the model sees them. Models without
`predict_proba` (LinearSVC) are explained through the softmax of their decision scores: fine for
ranking words, not calibrated probabilities.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lime.lime_text import LimeTextExplainer  # noqa: E402

from rakuten import logged_runs, recipes, tracking  # noqa: E402
from rakuten.classes import labelled  # noqa: E402
from rakuten.progress import duration  # noqa: E402
from rakuten.data import DataError  # noqa: E402
from rakuten.cli import command, load_model, open_store, store_options  # noqa: E402
from rakuten.predict import DEFAULT_MODEL_URI  # noqa: E402

SEPARATOR = " ||| "


def class_scores(pipeline):
    """A function from joined texts to class scores summing to one, for LIME."""

    def scores(texts: list[str]) -> np.ndarray:
        parts = [text.split(SEPARATOR.strip(), 1) for text in texts]
        rows = pd.DataFrame(
            {"designation": [p[0].strip() for p in parts], "description": [p[1].strip() if len(p) > 1 else "" for p in parts]}
        )
        if hasattr(pipeline, "predict_proba"):
            return pipeline.predict_proba(rows)
        decision = pipeline.decision_function(rows)
        decision = decision - decision.max(axis=1, keepdims=True)
        return np.exp(decision) / np.exp(decision).sum(axis=1, keepdims=True)

    return scores


def texts_per_second(pipeline, products: pd.DataFrame, probe: int = 32) -> float:
    """How many texts a second the model scores here, timed on `probe` copies of a product's text."""
    import time

    row = products.iloc[0]
    text = f"{row['designation']}{SEPARATOR}{row.get('description', '') or ''}"
    scorer = class_scores(pipeline)
    scorer([text])  # warm-up
    started = time.perf_counter()
    scorer([text] * probe)
    return probe / max(time.perf_counter() - started, 1e-9)


MIN_SAMPLES = 100  # fewer perturbations and LIME's weights are noise


def fitting_samples(asked: int, rate: float, seconds_per_product: float) -> int:
    """LIME's perturbations per product: as asked, fewer when the model is too slow for the budget."""
    return max(MIN_SAMPLES, min(asked, int(rate * seconds_per_product)))


def explain_products(pipeline, products: pd.DataFrame, num_features: int = 10, num_samples: int = 1000, seed: int = 42):
    """One LIME explanation per product: (index, predicted prdtypecode, explanation)."""
    from rakuten.progress import Progress

    classes = [labelled(c) for c in pipeline.classes_]
    explainer = LimeTextExplainer(class_names=classes, random_state=seed)
    scorer = class_scores(pipeline)
    explained = []
    progress = Progress(len(products), "products", "explaining", announce_over=float("inf"))
    for index, row in products.iterrows():
        text = f"{row['designation']}{SEPARATOR}{row.get('description', '') or ''}"
        top = int(np.argmax(scorer([text])[0]))
        explanation = explainer.explain_instance(
            text, scorer, labels=(top,), num_features=num_features, num_samples=num_samples
        )
        explained.append((index, int(pipeline.classes_[top]), explanation))
        progress.update(1)
    progress.__exit__()
    return explained


def write_explanations(explained, folder: Path, true_labels: pd.Series | None = None) -> list[Path]:
    """`product_<index>.html` (LIME's page) and `product_<index>.png` (bar chart) per product."""
    written = []
    for index, predicted, explanation in explained:
        label = explanation.available_labels()[0]
        truth = (f", true {labelled(true_labels.loc[index])}" if true_labels is not None and index in true_labels.index
                 else "")
        html_path = folder / f"product_{index}.html"
        html_path.write_text(explanation.as_html(labels=(label,)), encoding="utf-8")
        figure = explanation.as_pyplot_figure(label=label)
        figure.axes[0].set_title(f"product {index}: predicted {labelled(predicted)}{truth}")
        figure.tight_layout()
        png_path = folder / f"product_{index}.png"
        figure.savefig(png_path, dpi=110)
        plt.close(figure)
        written += [html_path, png_path]
    return written


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(parents=[store_options(DEFAULT_MODEL_URI)], prog="python -m rakuten.explain",
                                     description="LIME explanations of a text model, logged to its run.")
    parser.add_argument("--input", type=Path, default=None,
                        help="explain the products of this X-format file (CSV, plain or .gz, or Parquet)")
    parser.add_argument("--index", type=int, action="append",
                        help="product index in the run's test part, or in --input (repeatable)")
    parser.add_argument("--n", type=int, default=5, help="products to sample when no --index is given")
    parser.add_argument("--num-features", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=1000, help="LIME's perturbed texts per product")
    parser.add_argument("--seconds-per-product", type=float, default=60,
                        help="fewer samples when the model is too slow to score --num-samples texts in this time "
                             f"(at least {MIN_SAMPLES})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=None, help="also keep the files in this folder")
    args = parser.parse_args(argv)
    tracking.set_console(verbose=args.verbose)
    open_store(args.tracking_uri)
    pipeline = load_model(args.model_uri).unwrap_python_model().pipeline
    run_id = logged_runs.model_run_id(args.model_uri)
    if args.input:
        products, truth = _products_of(args.input), None
    else:
        parts = recipes.test_part(run_id)
        products, truth = parts.X_test, parts.y_test
        if logged_runs.refitted(run_id):
            print(f"note: the model of run {run_id[:8]} was refitted on every labelled row, these test-part "
                  "products included: it has seen them (--input FILE to explain products it has not)")
    if args.index:
        unknown = [i for i in args.index if i not in products.index]
        if unknown:
            raise DataError(f"indices {unknown} are not in {args.input or f'the test part of run {run_id}'}")
        chosen = products.loc[args.index]
    else:
        chosen = products.sample(min(args.n, len(products)), random_state=args.seed)
    rate = texts_per_second(pipeline, chosen)
    samples = fitting_samples(args.num_samples, rate, args.seconds_per_product)
    lowered = (f", lowered from {args.num_samples} to fit --seconds-per-product {args.seconds_per_product:g}"
               if samples < args.num_samples else "")
    print(f"explaining {len(chosen)} products with {samples} samples each{lowered}: about "
          f"{duration(len(chosen) * samples / rate)} here (the model scores {rate:,.0f} texts/s)", flush=True)
    explained = explain_products(pipeline, chosen, args.num_features, samples, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        written = write_explanations(explained, Path(folder), truth)
        with tracking.muted():
            tracking.log_files_to_run(run_id, written, "explanations")
        if args.output:
            args.output.mkdir(parents=True, exist_ok=True)
            for path in written:
                (args.output / path.name).write_bytes(path.read_bytes())
    for index, predicted, _ in explained:
        print(f"product {index}: predicted {predicted}" + (f", true {truth.loc[index]}" if truth is not None else ""))
    print(f"logged {len(written)} files under explanations/ of run {run_id}")
    return 0


def _products_of(path: Path) -> pd.DataFrame:
    """The products of an X-format file, indexed as in the file (integers where they are)."""
    from rakuten.batch import read_rows

    products = pd.concat(list(read_rows(path)))
    as_numbers = pd.to_numeric(products.index, errors="coerce")
    if not as_numbers.isna().any():
        products.index = as_numbers.astype("int64")
    return products


if __name__ == "__main__":
    sys.exit(main())
