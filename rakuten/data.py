"""Read, validate, join and split the challenge's files.

The challenge ships the products (`X_train_update.csv`) and their labels (`Y_train_CVw08PX.csv`)
as two files sharing one row index. A folder may hold only part of the products (the shared data
does), so X is always joined to Y by index, never by position.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

X_FILE = "X_train_update.csv"
Y_FILE = "Y_train_CVw08PX.csv"
IDS_FILE = "X_train_ids.csv"
TEXT_COLUMNS = ("designation", "description")
LABEL = "prdtypecode"


class DataError(ValueError):
    """The data on disk is missing, unreadable or not in the challenge's format."""


@dataclass(frozen=True)
class Split:
    """A stratified train/test split of labelled products."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    @property
    def fingerprint(self) -> str:
        """Identifies the rows, texts and labels of both parts: equal fingerprints, comparable scores."""
        digest = hashlib.sha256()
        # image paths depend on where the data sits; the products are the ids
        X_train, X_test = (x.drop(columns="image_path", errors="ignore") for x in (self.X_train, self.X_test))
        for part in (X_train, self.y_train, X_test, self.y_test):
            digest.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
        return digest.hexdigest()[:16]


def find_file(data_dir: str | Path, name: str) -> Path:
    """Return `data_dir/name` or `data_dir/name.gz`, whichever exists."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir}")
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    present = sorted(p.name for p in data_dir.iterdir())[:10]
    raise DataError(f"{data_dir} has no {name} (nor {name}.gz); it holds: {present or 'nothing'}")


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, index_col=0, **kwargs)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot read {path}: {error}") from error


def read_products(path: str | Path) -> pd.DataFrame:
    """Products in the X format: `,designation,description,productid,imageid`.

    `designation` is required; a missing `description` column or value becomes an empty string.
    """
    path = Path(path)
    products = _read_csv(path, dtype={"designation": "string", "description": "string"})
    if "designation" not in products.columns:
        raise DataError(
            f"{path} has no 'designation' column (columns: {list(products.columns)}); "
            "expected the challenge's X format ,designation,description,productid,imageid"
        )
    if "description" not in products.columns:
        products["description"] = ""
    for column in TEXT_COLUMNS:
        products[column] = products[column].fillna("").astype(str)
    return products


def read_labels(path: str | Path) -> pd.Series:
    """Labels in the Y format: `,prdtypecode`, as integers indexed like X."""
    path = Path(path)
    labels = _read_csv(path)
    if LABEL not in labels.columns:
        raise DataError(f"{path} has no '{LABEL}' column (columns: {list(labels.columns)})")
    if labels[LABEL].isna().any():
        raise DataError(f"{path} has {int(labels[LABEL].isna().sum())} empty {LABEL} values")
    return labels[LABEL].astype("int64")


def load_labelled(data_dir: str | Path, max_rows: int | None = None, seed: int = 42):
    """Products of `data_dir` and their labels, joined by index.

    `max_rows` keeps a stratified subsample, for quick runs.
    """
    products = read_products(find_file(data_dir, X_FILE))
    labels = labels_of(products, data_dir, "products")
    return _subsample(products, labels, max_rows, seed)


def labels_of(rows: pd.DataFrame, data_dir: str | Path, what: str) -> pd.Series:
    """The labels of `rows` from the Y file of `data_dir`, joined by index; every row needs one."""
    labels = read_labels(find_file(data_dir, Y_FILE))
    unlabelled = rows.index.difference(labels.index)
    if len(unlabelled):
        raise DataError(
            f"{len(unlabelled)} of {len(rows)} {what} in {data_dir} have no label in "
            f"{Y_FILE} (first indices: {list(unlabelled[:5])})"
        )
    return labels.loc[rows.index]


def _subsample(rows: pd.DataFrame, labels: pd.Series, max_rows: int | None, seed: int):
    """A stratified subsample of `max_rows` rows (all of them when None), in index order."""
    if max_rows is None or max_rows >= len(rows):
        return rows, labels
    keep, _ = train_test_split(rows.index, train_size=max_rows, stratify=_stratify(labels), random_state=seed)
    keep = keep.sort_values()
    return rows.loc[keep], labels.loc[keep]


def split(products: pd.DataFrame, labels: pd.Series, test_size: float = 0.2, seed: int = 42) -> Split:
    """Stratified train/test split; the test part is what every reported score is measured on."""
    test_rows = int(np.ceil(test_size * len(labels))) if isinstance(test_size, float) else int(test_size)
    stratify = _stratify(labels) if min(test_rows, len(labels) - test_rows) >= labels.nunique() else None
    X_train, X_test, y_train, y_test = train_test_split(
        products, labels, test_size=test_size, stratify=stratify, random_state=seed
    )
    return Split(X_train, X_test, y_train, y_test)


def _stratify(labels: pd.Series) -> pd.Series | None:
    """Stratify when every class has two members; otherwise sklearn cannot, so draw plainly."""
    return labels if labels.value_counts().min() >= 2 else None


# --- images --------------------------------------------------------------------------------------
IMAGES_DIR = Path("images") / "image_train"  # the challenge's layout, under data.dir
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG"


def image_file_name(imageid: int, productid: int) -> str:
    """The challenge's name of a product's picture."""
    return f"image_{imageid}_product_{productid}.jpg"


def read_product_ids(data_dir: str | Path) -> pd.DataFrame:
    """`productid` and `imageid` of every product: from X_train_ids.csv when the folder has it
    (the shared data: ids of all rows, text of a few), else from the X file."""
    try:
        path = find_file(data_dir, IDS_FILE)
    except DataError:
        path = find_file(data_dir, X_FILE)
    ids = _read_csv(path)
    missing = [c for c in ("productid", "imageid") if c not in ids.columns]
    if missing:
        raise DataError(f"{path} has no {missing} column (columns: {list(ids.columns)})")
    return ids[["productid", "imageid"]].astype("int64")


@dataclass(frozen=True)
class ImageCounts:
    found: int
    missing: int
    unreadable: int


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
        raise DataError(f"image folder not found: {folder}")
    ids = read_product_ids(data_dir)
    on_disk = {p.name for p in folder.iterdir()}
    names = [image_file_name(i, p) for i, p in zip(ids["imageid"], ids["productid"])]
    present = pd.Series([n in on_disk for n in names], index=ids.index)
    paths = pd.Series([str(folder / n) for n in names], index=ids.index)[present]
    readable = paths.map(_looks_like_image)
    counts = ImageCounts(int(readable.sum()), int((~present).sum()), int((~readable).sum()))
    if strict and (counts.missing or counts.unreadable):
        first = paths[~readable].head(3).tolist() or [names[i] for i in range(len(names)) if not present.iloc[i]][:3]
        raise DataError(f"{counts.missing} products have no picture and {counts.unreadable} pictures are "
                        f"unreadable in {folder} (e.g. {first}); data.images.strict=false to skip them")
    if not counts.found:
        raise DataError(f"no picture of a product of {data_dir} in {folder}")
    frame = ids.loc[paths[readable].index].assign(image_path=paths[readable])
    frame, labels = _subsample(frame, labels_of(frame, data_dir, "pictured products"), max_rows, seed)
    return frame, labels, counts


def _looks_like_image(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith(_JPEG) or head.startswith(_PNG)


# --- the split of each modality, shared by training and by tools that rebuild a run's test part ---
def text_split(data_dir, max_rows, test_size, seed) -> Split:
    products, labels = load_labelled(data_dir, max_rows, seed)
    return split(products, labels, test_size, seed)


def image_split(data_dir, images_dir, strict, max_rows, test_size, seed) -> tuple[Split, ImageCounts]:
    frame, labels, counts = load_images(data_dir, images_dir, strict, max_rows, seed)
    return split(frame, labels, test_size, seed), counts


@dataclass(frozen=True)
class FusionData:
    """Products with text, products with a picture, and the split of those that have both."""

    products: pd.DataFrame
    labels: pd.Series
    pictures: pd.DataFrame
    picture_labels: pd.Series
    parts: Split
    counts: ImageCounts


def fusion_split(data_dir, images_dir, strict, test_size, seed, min_products: int = 50) -> FusionData:
    products, labels = load_labelled(data_dir, None, seed)
    pictures, picture_labels, counts = load_images(data_dir, images_dir, strict)
    both = products.index.intersection(pictures.index)
    if len(both) < min_products:
        raise DataError(f"only {len(both)} products have both text and a picture in {data_dir}")
    rows = products.loc[both, ["designation", "description"]].join(pictures.loc[both, ["image_path"]])
    return FusionData(products, labels, pictures, picture_labels,
                      split(rows, labels.loc[both], test_size, seed), counts)
