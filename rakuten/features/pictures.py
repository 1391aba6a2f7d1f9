"""Classical picture descriptors: image paths in, one row of numbers per picture out.

A scikit-learn transformer (no TensorFlow): HSV colour histograms, a small grey thumbnail, HOG
(shapes: gradient orientations per cell) and local binary pattern histograms (texture), each
optional, computed with Pillow and scikit-image on the picture resized to `size`. It reads
`image_path` from product rows, so the whole chain lives in the logged model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class PictureDescriptors(TransformerMixin, BaseEstimator):
    requirements = ("scikit-image", "pillow")

    """`hsv_bins` bins per HSV channel (0: none), a `thumbnail` x `thumbnail` grey picture (0: none),
    HOG with `hog_cell`-pixel cells (0: none) and uniform LBP histograms at `lbp_radii` (8 points
    per unit of radius; empty: none)."""

    def __init__(self, size: int = 96, hsv_bins: int = 16, thumbnail: int = 16, hog_cell: int = 12,
                 lbp_radii: tuple[int, ...] = (1, 2)):
        self.size = size
        self.hsv_bins = hsv_bins
        self.thumbnail = thumbnail
        self.hog_cell = hog_cell
        self.lbp_radii = lbp_radii

    def fit(self, X, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        from joblib import Parallel, delayed

        paths = picture_paths(X)
        rows = Parallel()(delayed(self.describe)(path) for path in paths)  # cores: joblib's context
        return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, self.width()), np.float32)

    def describe(self, path: str) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as opened:
            picture = opened.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        parts = []
        if self.hsv_bins:
            hsv = np.asarray(picture.convert("HSV"))
            parts += [np.histogram(hsv[..., c], bins=self.hsv_bins, range=(0, 256))[0] / hsv[..., c].size
                      for c in range(3)]
        grey = np.asarray(picture.convert("L"), dtype=np.float32) / 255.0
        if self.thumbnail:
            small = picture.convert("L").resize((self.thumbnail, self.thumbnail), Image.Resampling.BILINEAR)
            parts.append(np.asarray(small, dtype=np.float32).ravel() / 255.0)
        if self.hog_cell:
            from skimage.feature import hog

            parts.append(hog(grey, orientations=9, pixels_per_cell=(self.hog_cell, self.hog_cell),
                             cells_per_block=(2, 2), feature_vector=True))
        for radius in self.lbp_radii or ():
            from skimage.feature import local_binary_pattern

            points = 8 * int(radius)
            codes = local_binary_pattern((grey * 255).astype(np.uint8), points, radius, method="uniform")
            parts.append(np.histogram(codes, bins=points + 2, range=(0, points + 2))[0] / codes.size)
        return np.concatenate([np.ravel(p) for p in parts]) if parts else np.zeros(0)

    def width(self) -> int:
        blank = self.describe_blank()
        return len(blank)

    def describe_blank(self) -> np.ndarray:
        """The descriptor of a blank picture (how wide a row is, without reading a file)."""
        import tempfile

        from PIL import Image

        with tempfile.NamedTemporaryFile(suffix=".png") as handle:
            Image.new("RGB", (self.size, self.size)).save(handle.name)
            return self.describe(handle.name)


def picture_paths(X) -> list[str]:
    """`image_path` of product rows (a frame), or the paths themselves (a list or Series)."""
    if isinstance(X, pd.DataFrame):
        if "image_path" not in X.columns:
            raise ValueError(f"picture rows need an 'image_path' column (got {list(X.columns)})")
        X = X["image_path"]
    return [str(path) for path in X]
