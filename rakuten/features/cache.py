"""Fit the features once per (data split, features config): a sweep over models or resamplers
then vectorises once.

An entry holds the fitted features transformer and the train and test matrices, under a key made
of the split's fingerprint, the resolved features config and the source of the text features
(so a change of cleaning code is a new key). Entries are written atomically: parallel jobs never
read half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import joblib

from rakuten.features import text


@dataclass
class Features:
    transformer: object
    train: object
    test: object
    cache_hit: bool
    seconds: float


def cache_key(fingerprint: str, features_config: dict) -> str:
    code = Path(text.__file__).read_bytes()
    payload = json.dumps({"data": fingerprint, "features": features_config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode() + code).hexdigest()[:24]


def fit_features(transformer, X_train, X_test, key: str, cache_dir: str | Path | None) -> Features:
    """Fitted `transformer` and both matrices, from `cache_dir` when present (None: no cache)."""
    started = time.perf_counter()
    path = Path(cache_dir) / f"{key}.joblib" if cache_dir else None
    if path is not None and path.is_file():
        try:
            fitted, train, test = joblib.load(path)
            return Features(fitted, train, test, True, time.perf_counter() - started)
        except Exception:  # a corrupt or incompatible entry is rebuilt, not trusted
            path.unlink(missing_ok=True)
    train = transformer.fit_transform(X_train)
    test = transformer.transform(X_test)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        joblib.dump((transformer, train, test), temporary)
        os.replace(temporary, path)
    return Features(transformer, train, test, False, time.perf_counter() - started)
