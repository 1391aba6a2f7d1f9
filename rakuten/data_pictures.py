"""Find the products' pictures: the challenge's file names, matched to rows by their ids.

A folder holds the pictures of some products only (the shared data: a few thousand of 84,916), so
each is matched by imageid and productid, counted when missing or unreadable, and labelled by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rakuten import data

IMAGES_DIR = Path("images") / "image_train"  # the challenge's layout, under data.dir
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG"


def image_file_name(imageid: int, productid: int) -> str:
    """The challenge's name of a product's picture."""
    return f"image_{imageid}_product_{productid}.jpg"


def read_product_ids(data_dir: str | Path) -> pd.DataFrame:
    """`productid` and `imageid` of every product: from X_train_ids.csv when the folder has it
    (the shared data: ids of all rows, text of a few), else from the X file."""
    path = ids_file(data_dir)
    ids = data.read_csv(path)
    missing = [c for c in ("productid", "imageid") if c not in ids.columns]
    if missing:
        raise data.DataError(f"{path} has no {missing} column (columns: {list(ids.columns)})")
    return ids[["productid", "imageid"]].astype("int64")


def ids_file(data_dir: str | Path) -> Path:
    try:
        return data.find_file(data_dir, data.IDS_FILE)
    except data.DataError:
        return data.find_file(data_dir, data.X_FILE)


@dataclass(frozen=True)
class ImageCounts:
    """Pictures of the products a folder lists (`listed`, in `listed_in`): readable, missing, unreadable."""

    found: int
    missing: int
    unreadable: int
    listed: int = 0
    listed_in: str = ""

    def sentence(self) -> str:
        return (f"pictures: {self.found:,} readable for the {self.listed:,} labelled products listed in "
                f"{self.listed_in} ({self.missing:,} have no picture here, {self.unreadable:,} unreadable)")


def load_images(
    data_dir: str | Path, images_dir: str | Path | None = None, strict: bool = False,
    max_rows: int | None = None, seed: int = 42,
) -> tuple[pd.DataFrame, pd.Series, ImageCounts]:
    """Products that have a readable picture: `image_path` per row index, and their labels.

    Pictures are matched to rows by imageid and productid (their file names); labels are joined by
    index. Rows without a picture, and pictures that are empty or not JPEG/PNG, are counted, or are
    an error with `strict`.
    """
    folder = Path(images_dir) if images_dir else Path(data_dir) / IMAGES_DIR
    if not folder.is_dir():
        raise data.DataError(f"image folder not found: {folder}")
    ids, listed_in = read_product_ids(data_dir), ids_file(data_dir).name
    on_disk = {p.name for p in folder.iterdir()}
    names = [image_file_name(i, p) for i, p in zip(ids["imageid"], ids["productid"])]
    present = pd.Series([n in on_disk for n in names], index=ids.index)
    paths = pd.Series([str(folder / n) for n in names], index=ids.index)[present]
    readable = paths.map(_looks_like_image)
    counts = ImageCounts(int(readable.sum()), int((~present).sum()), int((~readable).sum()), len(ids), listed_in)
    if strict and (counts.missing or counts.unreadable):
        first = paths[~readable].head(3).tolist() or [names[i] for i in range(len(names)) if not present.iloc[i]][:3]
        raise data.DataError(f"{counts.missing} products have no picture and {counts.unreadable} pictures are "
                             f"unreadable in {folder} (e.g. {first}); data.images.strict=false to skip them")
    if not counts.found:
        raise data.DataError(f"no picture of a product of {data_dir} in {folder}")
    frame = ids.loc[paths[readable].index].assign(image_path=paths[readable])
    frame, labels = data.subsample(frame, data.labels_of(frame, data_dir, "pictured products"), max_rows, seed)
    return frame, labels, counts


def _looks_like_image(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith(_JPEG) or head.startswith(_PNG)


def image_split(data_dir, images_dir, strict, max_rows, test_size, seed) -> tuple[data.Split, ImageCounts]:
    """The split of the pictured products, as `data.text_split` draws the texts'."""
    frame, labels, counts = load_images(data_dir, images_dir, strict, None, seed)
    return data.drawn_split(frame, labels, max_rows, test_size, seed), counts
