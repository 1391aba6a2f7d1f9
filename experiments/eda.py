"""Exploratory analysis of the challenge data, logged as an MLflow run named `eda`.

    python experiments/eda.py --data-dir ../shared/data/rakuten

Logs: the class histogram over every label in Y (84,916 in the challenge file), text length
distributions, the share of empty descriptions, the languages of the products (py3langid,
offline), and the top words and a word cloud per class (from the products that have text).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rakuten import data, tracking  # noqa: E402
from rakuten.cli import command  # noqa: E402
from rakuten.features.text import ProductFields, word_options  # noqa: E402


def class_histogram(labels: pd.Series):
    counts = labels.value_counts().sort_index()
    figure, axes = plt.subplots(figsize=(11, 4.5))
    axes.bar([str(c) for c in counts.index], counts.to_numpy(), color="tab:blue")
    axes.set_xlabel("prdtypecode")
    axes.set_ylabel("products")
    axes.set_title(f"Classes of all {len(labels):,} labelled products (max/min = {counts.max() / counts.min():.1f})")
    axes.tick_params(axis="x", rotation=90)
    figure.tight_layout()
    return figure, counts


def length_distributions(products: pd.DataFrame):
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column in zip(axes, ("designation", "description")):
        words = products[column].str.split().str.len()
        words = words[words > 0]
        ax.hist(np.log10(words), bins=40, color="tab:green")
        ax.set_xlabel(f"words in {column} (log10; non-empty only)")
        ax.set_ylabel("products")
        ax.set_title(f"{column}: median {int(words.median())} words")
    figure.tight_layout()
    return figure


# The catalogue's languages; left open, py3langid calls short titles Luxembourgish or Latin.
LANGUAGES = ["fr", "en", "de", "it", "es", "nl", "pt"]


def languages(products: pd.DataFrame) -> pd.Series:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(LANGUAGES)
    texts = (products["designation"] + " " + products["description"]).str.slice(0, 1000)
    return texts.map(lambda text: identifier.classify(text)[0]).value_counts()


def top_words(products: pd.DataFrame, labels: pd.Series, n: int = 15) -> dict[int, list[tuple[str, int]]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyze = TfidfVectorizer(**word_options(min_word_length=3)).build_analyzer()
    texts = pd.Series(ProductFields(("text",)).fit_transform(products)["text"].to_numpy(), index=products.index)
    return {
        int(code): Counter(word for text in texts[labels == code] for word in analyze(text)).most_common(n)
        for code in sorted(labels.unique())
    }


def word_clouds(words: dict[int, list[tuple[str, int]]]):
    from wordcloud import WordCloud

    codes = list(words)
    columns = 6
    rows = int(np.ceil(len(codes) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.2 * rows))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, code in zip(axes.ravel(), codes):
        frequencies = dict(words[code]) or {"(none)": 1}
        cloud = WordCloud(width=300, height=200, background_color="white", random_state=0)
        ax.imshow(cloud.generate_from_frequencies(frequencies))
        ax.set_title(str(code), fontsize=10)
    figure.tight_layout()
    return figure


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/eda.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--experiment", default="rakuten-reports",
                        help="where the run goes: beside the reports, not among the model runs")
    parser.add_argument("--top-words", type=int, default=40)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    tracking.connect(args.tracking_uri, args.experiment)
    all_labels = data.read_labels(data.find_file(args.data_dir, data.Y_FILE))
    products, labels = data.load_labelled(args.data_dir)
    figure, counts = class_histogram(all_labels)
    found_languages = languages(products)
    words = top_words(products, labels, args.top_words)
    share_empty = float((products["description"].str.strip() == "").mean())
    run_id = tracking.log_summary_run(
        "eda", args.experiment, tags={"run_type": "eda"},
        metrics={"labels": len(all_labels), "classes": all_labels.nunique(), "products_with_text": len(products),
                 "share_empty_description": share_empty,
                 "class_imbalance_ratio": float(counts.max() / counts.min()),
                 "share_french": found_languages.get("fr", 0) / len(products)},
        files={},
        figures={"class_histogram": figure, "text_lengths": length_distributions(products),
                 "word_clouds": word_clouds(words)},
        dicts={"class_counts": {str(k): int(v) for k, v in counts.items()},
               "languages": {k: int(v) for k, v in found_languages.items()},
               "top_words": {str(k): v for k, v in words.items()}})
    plt.close("all")
    print(f"labels {len(all_labels):,}; products with text {len(products):,}; empty descriptions {share_empty:.1%}; "
          f"languages {({k: int(v) for k, v in found_languages.items()})}")
    experiment_id = tracking.run_info(run_id).experiment_id
    print(f"eda run {run_id[:8]} in experiment {args.experiment}: "
          f"{tracking.run_link(tracking.tracking_uri(), experiment_id, run_id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
