"""Read, validate, join and split the challenge's files.

The challenge ships the products (`X_train_update.csv`) and their labels (`Y_train_CVw08PX.csv`)
as two files sharing one row index. A folder may hold only part of the products (the shared data
does), so X is always joined to Y by index, never by position.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from rakuten.data_of import DataOf

X_FILE = "X_train_update.csv"
Y_FILE = "Y_train_CVw08PX.csv"
IDS_FILE = "X_train_ids.csv"
TEXT_COLUMNS = ("designation", "description")
LABEL = "prdtypecode"

log = logging.getLogger(__name__)


class DataError(ValueError):
    """The data on disk is missing, unreadable or not in the challenge's format."""


@dataclass(frozen=True)
class Split:
    """A stratified train/test split of labelled products."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    train_only_classes: tuple[int, ...] = ()  # classes too small to split: all their rows train
    population: pd.Index | None = None  # every labelled row the data offered (before `data.max_rows`)

    @property
    def rows(self) -> pd.Index:
        """The labelled rows this split drew from its data, both parts."""
        return self.X_train.index.append(self.X_test.index).sort_values()

    @property
    def population_index(self) -> pd.Index:
        return (self.population if self.population is not None else self.rows).sort_values()

    @property
    def population_digest(self) -> str:
        """Identifies which products the data offered (not their split): equal digests, the same data."""
        return ids_digest(self.population_index)

    def all_rows(self) -> tuple[pd.DataFrame, pd.Series]:
        """Every labelled row of the split, training part first (what CV and refits use)."""
        return pd.concat([self.X_train, self.X_test]), pd.concat([self.y_train, self.y_test])

    def learned_from(self, dataset: str) -> DataOf:
        """The data a model of this split learns from (`dataset`: the runs table's name of it)."""
        return DataOf(dataset, self.population_digest, len(self.population_index), len(self.rows),
                      tuple(int(i) for i in self.population_index))

    def tags(self) -> dict[str, str]:
        """What a run records of its split beside the data it learned from (`learned_from`)."""
        tags = {"data_fingerprint": self.fingerprint}
        if self.train_only_classes:  # classes too small to split: trained on, not scored
            tags["train_only_classes"] = ",".join(map(str, self.train_only_classes))
        return tags

    @property
    def fingerprint(self) -> str:
        """Identifies the rows, texts and labels of both parts: equal fingerprints, comparable scores."""
        digest = hashlib.sha256()
        # image paths depend on where the data sits; the products are the ids
        X_train, X_test = (x.drop(columns="image_path", errors="ignore") for x in (self.X_train, self.X_test))
        for part in (X_train, self.y_train, X_test, self.y_test):
            digest.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
        return digest.hexdigest()[:16]


def ids_digest(index: pd.Index) -> str:
    return hashlib.sha256(np.asarray(sorted(index), dtype="int64").tobytes()).hexdigest()[:16]


def find_file(data_dir: str | Path, name: str) -> Path:
    """Return `data_dir/name` or `data_dir/name.gz`, whichever exists."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir}")
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
        if candidate.exists():  # a FIFO, a device, a folder: reading it could block or mean nothing
            raise DataError(f"{candidate} is not a regular file: put the file itself there")
    present = sorted(p.name for p in data_dir.iterdir())[:10]
    raise DataError(f"{data_dir} has no {name} (nor {name}.gz); it holds: {present or 'nothing'}")


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """The CSV at `path` (plain or .gz, BOM and CRLF tolerated), its first column as the index.

    Undecodable bytes are kept as lone surrogates, then reported with their row; duplicated
    index values are refused: X and Y are joined by index, so each must be unique.
    """
    try:
        with pd.option_context("future.infer_string", False):  # Arrow strings cannot hold the surrogates
            frame = pd.read_csv(path, index_col=0, encoding="utf-8-sig", encoding_errors="surrogateescape",
                                **kwargs)
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    undecodable = _rows_with_surrogates(frame)
    if len(undecodable):
        raise DataError(f"{path}: data row {frame.index.get_loc(undecodable[0]) + 1} (index {undecodable[0]}) "
                        f"has bytes that are not UTF-8 ({len(undecodable)} such rows); save the file as UTF-8")
    duplicated = frame.index[frame.index.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"{path}: {len(duplicated)} index values appear more than once "
                        f"(first: {list(duplicated[:5])}); each product needs its own index")
    return frame


def _rows_with_surrogates(frame: pd.DataFrame) -> pd.Index:
    """Index of the rows whose text holds lone surrogates (bytes that were not UTF-8)."""
    bad = pd.Series(False, index=range(len(frame)))
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            texts = frame[column].astype(object)
            bad |= texts.map(lambda text: isinstance(text, str) and has_surrogates(text)).to_numpy()
    return frame.index[bad.to_numpy()]


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def read_products(path: str | Path) -> pd.DataFrame:
    """Products in the X format: `,designation,description,productid,imageid`.

    `designation` is required; a missing `description` column or value becomes an empty string.
    """
    path = Path(path)
    products = read_csv(path, dtype={"designation": object, "description": object})
    if "designation" not in products.columns:
        raise DataError(
            f"{path} has no 'designation' column (columns: {list(products.columns)}); "
            "expected the challenge's X format ,designation,description,productid,imageid"
        )
    if products.empty:
        raise DataError(f"{path} holds a header and no products")
    if "description" not in products.columns:
        products["description"] = ""
    for column in TEXT_COLUMNS:
        products[column] = products[column].fillna("").astype(str)
    if not products["designation"].str.strip().any():
        raise DataError(f"{path}: every designation is empty; the text models need the product titles")
    return products


def read_labels(path: str | Path) -> pd.Series:
    """Labels in the Y format: `,prdtypecode`, as integers indexed like X."""
    path = Path(path)
    labels = read_csv(path, dtype={LABEL: object})
    if LABEL not in labels.columns:
        raise DataError(f"{path} has no '{LABEL}' column (columns: {list(labels.columns)})")
    codes = pd.to_numeric(labels[LABEL], errors="coerce")
    bad = codes.isna() | (codes != codes.round())
    if bad.any():
        first = labels.index[bad.to_numpy()][0]
        raise DataError(f"{path}: column {LABEL}, data row {labels.index.get_loc(first) + 1} (index {first}): "
                        f"{labels[LABEL].loc[first]!r} is not an integer product type code "
                        f"({int(bad.sum())} such rows)")
    return codes.astype("int64")


def load_labelled(data_dir: str | Path, max_rows: int | None = None, seed: int = 42):
    """Products of `data_dir` and their labels, joined by index.

    `max_rows` keeps a stratified subsample, for quick runs.
    """
    products = read_products(find_file(data_dir, X_FILE))
    labels = labels_of(products, data_dir, "products")
    return subsample(products, labels, max_rows, seed)


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


def subsample(rows: pd.DataFrame, labels: pd.Series, max_rows: int | None, seed: int):
    """A stratified subsample of `max_rows` rows (all of them when None), in index order."""
    if max_rows is None or max_rows >= len(rows):
        return rows, labels
    if max_rows < labels.nunique():
        raise DataError(f"data.max_rows={max_rows} is below the number of classes ({labels.nunique()}): "
                        "raise it, or null for every row")
    keep, _ = _stratified_split(rows.index, labels, len(rows) - max_rows, seed, "data.max_rows")
    keep = keep.sort_values()
    return rows.loc[keep], labels.loc[keep]


def split(products: pd.DataFrame, labels: pd.Series, test_size: float = 0.2, seed: int = 42) -> Split:
    """Stratified train/test split; the test part is what every reported score is measured on.

    Classes with a single product cannot be on both sides: they stay in the training part, are
    named in a warning and in `Split.train_only_classes`; the other classes are still stratified.
    """
    if isinstance(test_size, float) and not 0 < test_size < 1:
        raise DataError(f"data.test_size={test_size} must be a share between 0 and 1 (or a row count)")
    test_rows = int(np.ceil(test_size * len(labels))) if isinstance(test_size, float) else int(test_size)
    train_index, test_index = _stratified_split(labels.index, labels, test_rows, seed, "data.test_size")
    counts = labels.value_counts()
    singles = tuple(sorted(int(code) for code in counts.index[counts < 2]))
    return Split(products.loc[train_index], products.loc[test_index], labels.loc[train_index],
                 labels.loc[test_index], singles)


def _stratified_split(index: pd.Index, labels: pd.Series, test_rows: int, seed: int, key: str):
    """(train index, test index) with `test_rows` on the test side, stratified by class.

    Classes with one member go to the training side (sklearn cannot stratify them); when the test
    side is smaller than the number of classes, stratification is impossible and the draw is plain.
    """
    counts = labels.loc[index].value_counts()
    singles = counts.index[counts < 2]
    alone = index[labels.loc[index].isin(singles).to_numpy()]
    rest = labels.loc[index].drop(alone)
    if len(singles):
        log.warning("%d classes have a single product and stay in the training part (%s): %s",
                    len(singles), key, sorted(int(c) for c in singles))
    if not 0 < test_rows < len(rest):
        raise DataError(f"{key}: cannot draw {test_rows} of {len(labels)} rows for the other side")
    stratify = rest if min(test_rows, len(rest) - test_rows) >= rest.nunique() else None
    if stratify is None:
        log.warning("%s: %d rows on one side are fewer than the %d classes; drawn without stratification",
                    key, min(test_rows, len(rest) - test_rows), rest.nunique())
    train, test = train_test_split(rest.index, test_size=test_rows, stratify=stratify, random_state=seed)
    return train.append(alone), test


# --- the text split, shared by training and by tools that rebuild a run's test part ---
def text_split(data_dir, max_rows, test_size, seed) -> Split:
    products, labels = load_labelled(data_dir, None, seed)
    return drawn_split(products, labels, max_rows, test_size, seed)


def drawn_split(rows: pd.DataFrame, labels: pd.Series, max_rows, test_size, seed) -> Split:
    """The split of `max_rows` rows drawn from `rows` (all when None), knowing what it was drawn from."""
    population = rows.index
    rows, labels = subsample(rows, labels, max_rows, seed)
    return replace(split(rows, labels, test_size, seed), population=population)
