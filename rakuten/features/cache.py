"""Fit the features once per (data split, features config): a sweep over models or resamplers
then vectorises once.

An entry holds the fitted features transformer and the train and test matrices, under a key made
of the split's fingerprint, the resolved features config and the source of every module of
`rakuten.features` (so a change of cleaning or embedding code is a new key). Entries are written atomically: parallel jobs never
read half a file.

An entry is a pickle, and loading a pickle runs code: the cache lives in a folder only its owner
can enter (mode 0700; a folder that others may write is not used), and each entry is loaded only
if its HMAC, made at save time with this user's key (kept outside every cache: `signing`), matches
its bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import joblib

from rakuten import lifecycle
from rakuten.features import text
from rakuten.features.signing import private_folder, secret

log = logging.getLogger("rakuten.features.cache")


@dataclass
class Features:
    transformer: object
    train: object
    test: object
    cache_hit: bool
    seconds: float


def cache_key(fingerprint: str, features_config: dict) -> str:
    """The entry of a split and a features config, computed by this version of the code: every
    module that computes features is part of the key (a change to any one is a new entry)."""
    code = b"".join(path.read_bytes() for path in sorted(Path(text.__file__).parent.glob("*.py")))
    payload = json.dumps({"data": fingerprint, "features": features_config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode() + code).hexdigest()[:24]


def fit_features(transformer, X_train, X_test, key: str, cache_dir: str | Path | None) -> Features:
    """Fitted `transformer` and both matrices, from `cache_dir` when present (None: no cache)."""
    started = time.perf_counter()
    folder = private_folder(cache_dir) if cache_dir else None
    path = folder / f"{key}.joblib" if folder else None
    if path is not None and path.is_file():
        try:
            if not _signature(folder, path) == _read(path.with_suffix(".hmac")):
                raise ValueError("its HMAC does not match")
            fitted, train, test = joblib.load(path)
            return Features(fitted, train, test, True, time.perf_counter() - started)
        except Exception as error:  # a corrupt, unsigned or incompatible entry is rebuilt, not trusted
            log.warning("features cache entry %s not used (%s): rebuilt", path.name, error)
            path.unlink(missing_ok=True)
    train = transformer.fit_transform(X_train)
    test = transformer.transform(X_test)
    if path is not None:
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(handle)
        with lifecycle.removed_if_killed(temporary):
            joblib.dump((transformer, train, test), temporary)
            path.with_suffix(".hmac").write_bytes(_signature(folder, Path(temporary)))
            os.replace(temporary, path)
    return Features(transformer, train, test, False, time.perf_counter() - started)


def _signature(folder: Path, path: Path) -> bytes:
    digest = hmac.new(secret(), digestmod=hashlib.sha256)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest().encode()


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""
