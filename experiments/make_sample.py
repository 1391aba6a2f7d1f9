"""Rebuild the bundled sample in data/sample/ from the challenge files.

Usage: python experiments/make_sample.py ../shared/data/rakuten data/sample --rows 2000 --pictures 324

A stratified draw of real rows (seed 42), written in the challenge's own format so that the sample
is read by exactly the same code as the full data; and a stratified draw of `--pictures` real
pictures (the sample's pictured products first), resized to `--picture-size` pixels a side, with
their ids (`X_train_ids.csv.gz`) and labels, so that picture models train on a fresh clone.
"""

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from rakuten.data import IDS_FILE, LABEL, X_FILE, Y_FILE, find_file, read_labels, read_products
from rakuten.data_pictures import IMAGES_DIR, load_images


def pictures_drawn(source: Path, sample_index: pd.Index, count: int, seed: int) -> pd.DataFrame:
    """`count` pictured products, stratified by class: the sample's own first, then others."""
    frame, labels, _ = load_images(source)
    own = frame.index.intersection(sample_index)
    others = frame.index.difference(sample_index)
    wanted = count - len(own)
    picked, _ = train_test_split(others, train_size=wanted, stratify=labels.loc[others], random_state=seed)
    return frame.loc[own.append(picked).sort_values()]


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--pictures", type=int, default=324, help="pictures shipped (0: none)")
    parser.add_argument("--picture-size", type=int, default=256, help="pixels a side of the shipped pictures")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    products = read_products(find_file(args.source, X_FILE))
    every_label = read_labels(find_file(args.source, Y_FILE))
    labels = every_label.loc[products.index]
    sample_index, _ = train_test_split(
        products.index, train_size=args.rows, stratify=labels, random_state=args.seed
    )
    sample_index = sample_index.sort_values()
    args.target.mkdir(parents=True, exist_ok=True)
    products.loc[sample_index].to_csv(args.target / f"{X_FILE}.gz")
    labelled = sample_index
    if args.pictures:
        pictured = pictures_drawn(args.source, sample_index, args.pictures, args.seed)
        folder = args.target / IMAGES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for path in pictured["image_path"]:
            with Image.open(path) as opened:
                opened.convert("RGB").resize((args.picture_size, args.picture_size), Image.Resampling.LANCZOS).save(
                    folder / Path(path).name, "JPEG", quality=85)
        ids = pd.concat([products.loc[sample_index, ["productid", "imageid"]],
                         pictured.loc[pictured.index.difference(sample_index), ["productid", "imageid"]]])
        ids.sort_index().to_csv(args.target / f"{IDS_FILE}.gz")
        labelled = ids.index
        print(f"wrote {len(pictured)} pictures ({args.picture_size} px) to {folder}")
    every_label.loc[labelled.sort_values()].to_frame(LABEL).to_csv(args.target / f"{Y_FILE}.gz")
    print(f"wrote {len(sample_index)} rows to {args.target}")


if __name__ == "__main__":
    main()
