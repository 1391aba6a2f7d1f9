"""Where an image model's pictures come from: the bytes a client sent, or files it may read.

Rows name their picture by `image_b64` (the picture itself, base64: what a REST client sends),
`image_path`, or `imageid` + `productid` with `params={"images_dir": ...}`. In-process use
(`mlflow.pyfunc.load_model(...).predict(rows)`) reads the caller's own files. A model served by
`rakuten.serve` reads no file a client names unless the operator gave a root
(`--images-root DIR`): a path is read only if, links and `..` resolved, it lies under that root;
any other path, existing or not, gets the same answer, so a client learns nothing of the server's
files. Either way only regular files are opened (a FIFO would block a scoring thread forever), a
picture over `MAX_PICTURE_BYTES` is refused, and so is one whose header announces more than
`max_pixels()` pixels (a 140 KB PNG can decode to gigabytes: checked before decoding) or that Pillow
cannot decode (text, SVG, a truncated JPEG): a 400 naming the row, never a 500. Pictures are decoded
by at most `DECODERS` threads at once, whatever the number of requests.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import pandas as pd

MAX_PICTURE_BYTES = 20 * 1024 * 1024
MAX_PIXELS_ENV = "RAKUTEN_MAX_PICTURE_PIXELS"
DEFAULT_MAX_PIXELS = 4096 * 4096  # product pictures are 500 x 500
DECODERS = 2
_decoding = threading.BoundedSemaphore(DECODERS)
REFUSED = ("image_path names no picture this server may read: send the picture itself as image_b64 (base64), "
           "or a path under the folder the server was started with (--images-root)")


class PictureError(ValueError):
    """A row whose picture cannot be read (the scoring server answers 400 with this message)."""


_served = False  # set by rakuten.serve: client-named paths are confined to _root
_root: str | None = None


def serve_pictures_from(root: str | Path | None) -> None:
    """From now on (in this process), paths are read only under `root` (None: no path at all)."""
    global _served, _root
    _served = True
    _root = os.path.realpath(root) if root else None


def _checked(path: str) -> str:
    """`path`, if this process may open it as a picture."""
    real = os.path.realpath(path)
    if _served and (_root is None or os.path.commonpath([_root, real]) != _root):
        raise PictureError(REFUSED)
    try:
        info = os.stat(real)
    except OSError:
        raise PictureError(REFUSED if _served else f"picture not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PictureError(REFUSED if _served else f"not a regular file: {path}")
    if info.st_size > MAX_PICTURE_BYTES:
        raise PictureError(f"picture over {MAX_PICTURE_BYTES // 2**20} MB: {'(image_path)' if _served else path}")
    return real


def max_pixels() -> int:
    """The pixel cap: `$RAKUTEN_MAX_PICTURE_PIXELS` (`rakuten.serve --max-picture-pixels` sets it)."""
    return int(os.environ.get(MAX_PIXELS_ENV) or DEFAULT_MAX_PIXELS)


def decodable(path: str, where: str) -> str:
    """`path`, once its header announces at most `max_pixels()` pixels and it decodes (by at most
    `DECODERS` threads at once); `where` names the row in the error."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if width * height > max_pixels():
                raise PictureError(f"{where}: {width}x{height} pixels, over the cap of {max_pixels():,} "
                                   f"({MAX_PIXELS_ENV})")
            with _decoding:
                opened.load()
    except PictureError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        kind = type(error).__name__
        raise PictureError(f"{where} is not a picture that can be decoded (JPEG, PNG...): {kind}") from None
    return path


def _written(encoded: str, folder: Path, number: int) -> str:
    if len(encoded) > MAX_PICTURE_BYTES * 4 // 3 + 4:
        raise PictureError(f"image_b64 of row {number}: picture over {MAX_PICTURE_BYTES // 2**20} MB")
    try:
        picture = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PictureError(f"image_b64 of row {number} is not base64") from None
    path = folder / f"picture_{number}"
    path.write_bytes(picture)
    return decodable(str(path), f"image_b64 of row {number}")


@contextlib.contextmanager
def picture_rows(rows: pd.DataFrame, images_dir: str = ""):
    """`rows` with an `image_path` per row that this process may read (None where a row has no
    picture: a fusion model then uses its text alone); pictures sent as bytes live in a private
    temporary folder for the block."""
    folder = None
    try:
        if "image_b64" in rows.columns:
            folder = Path(tempfile.mkdtemp(prefix="rakuten-pictures-"))
            paths = [None if _missing(value) else _written(_text(value, "image_b64", number), folder, number)
                     for number, value in enumerate(rows["image_b64"], 1)]
        elif "image_path" in rows.columns:
            paths = [None if _missing(value) else
                     decodable(_checked(_text(value, "image_path", number)), f"image_path of row {number}")
                     for number, value in enumerate(rows["image_path"], 1)]
        elif {"imageid", "productid"} <= set(rows.columns) and images_dir:
            paths = [decodable(_checked(str(Path(images_dir) / f"image_{int(i)}_product_{int(p)}.jpg")),
                               f"the picture of row {number}")
                     for number, (i, p) in enumerate(zip(rows["imageid"], rows["productid"]), 1)]
        else:
            raise PictureError(f"no picture column: image rows need image_b64 (the picture, base64) or image_path "
                               f"for every row, or imageid and productid with params={{'images_dir': ...}} "
                               f"(got {list(rows.columns) or 'no column the model takes'})")
        yield rows.assign(image_path=pd.Series(paths, index=rows.index, dtype=object))
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _text(value, column: str, number: int) -> str:
    if not isinstance(value, str):
        raise PictureError(f"column '{column}', row {number}: expected text, got {type(value).__name__}")
    return value
