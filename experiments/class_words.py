"""Each class's most telling designation words beside its short name (`rakuten/classes.py`): the
evidence the names were derived from, for anyone to check or to redo on another export.

    python experiments/class_words.py --data-dir ../shared/data/rakuten --words 8

A class's words are those of highest mean TF-IDF over its products' designations (French and
English stop words, digits and words under 3 letters left out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rakuten import data  # noqa: E402
from rakuten.classes import class_name  # noqa: E402


def telling_words(data_dir: str, count: int) -> dict[int, list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from stop_words import get_stop_words

    products, labels = data.load_labelled(data_dir)
    stop = sorted(set(get_stop_words("fr")) | set(get_stop_words("en")))
    vectorizer = TfidfVectorizer(max_features=20000, stop_words=stop, token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
    matrix = vectorizer.fit_transform(products["designation"].fillna(""))
    vocabulary = np.asarray(vectorizer.get_feature_names_out())
    words = {}
    for code in sorted(labels.unique()):
        mean = np.asarray(matrix[(labels == code).to_numpy()].mean(axis=0)).ravel()
        words[int(code)] = vocabulary[np.argsort(-mean)[:count]].tolist()
    return words


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = argparse.ArgumentParser(prog="python experiments/class_words.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "rakuten"))
    parser.add_argument("--words", type=int, default=8)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Your stop_words may be inconsistent")
    for code, words in telling_words(args.data_dir, args.words).items():
        print(f"{code:>5}  {class_name(code) or '(no name)':26} {' '.join(words)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
