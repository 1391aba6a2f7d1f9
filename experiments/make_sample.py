"""Rebuild the bundled sample in data/sample/ from the challenge files.

Usage: python experiments/make_sample.py ../shared/data/rakuten data/sample --rows 2000

A stratified draw of real rows (seed 42), written in the challenge's own format so that
the sample is read by exactly the same code as the full data.
"""

import argparse
from pathlib import Path

from sklearn.model_selection import train_test_split

from rakuten.data import LABEL, X_FILE, Y_FILE, find_file, read_labels, read_products


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    products = read_products(find_file(args.source, X_FILE))
    labels = read_labels(find_file(args.source, Y_FILE)).loc[products.index]
    sample_index, _ = train_test_split(
        products.index, train_size=args.rows, stratify=labels, random_state=args.seed
    )
    sample_index = sample_index.sort_values()
    args.target.mkdir(parents=True, exist_ok=True)
    products.loc[sample_index].to_csv(args.target / f"{X_FILE}.gz")
    labels.loc[sample_index].to_frame(LABEL).to_csv(args.target / f"{Y_FILE}.gz")
    print(f"wrote {len(sample_index)} rows to {args.target}")


if __name__ == "__main__":
    main()
