"""The per-item cache of pretrained features: each picture (by its file's digest) and each text (by
its digest) computed once per extractor, kept as a raw float32 row (no pickle) signed with this
user's key (`signing`). Training turns it on (`use_cache`); a served model never does. Where it is
lives in an environment variable, so that joblib's worker processes see it too."""

from __future__ import annotations

import hmac
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("rakuten.features.pretrained")
QUIET_BELOW = 64  # fewer items computed (a refit's few, a REST request's) are logged at DEBUG only
CACHE_ENV = "RAKUTEN_PRETRAINED_CACHE"


def use_cache(folder: str | Path | None) -> None:
    """Where training keeps per-item features (None: nowhere). A served model never sets it."""
    from rakuten.features.signing import private_folder

    private = private_folder(Path(folder) / "pretrained") if folder else None
    if private is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = str(private)


def cache_is_on() -> bool:
    return bool(os.environ.get(CACHE_ENV))


def cached_rows(extractor: str, keys: list[str], width: int, compute, what: str) -> np.ndarray:
    """Rows for `keys`: from the cache where signed entries exist, else `compute(positions)`."""
    from rakuten.features.signing import make_private, warn_once
    from rakuten.features.signing import secret as signing_secret

    out = np.zeros((len(keys), width), dtype=np.float32)
    root = Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else None
    folder = root / extractor if root is not None else None
    missing = list(range(len(keys)))
    if folder is not None:
        make_private(folder)
        secret, missing, foreign = signing_secret(), [], 0
        for position, key in enumerate(keys):
            row = _load(folder / key, secret, width)
            if row is None:
                missing.append(position)
                foreign += (folder / key).exists()
            else:
                out[position] = row
        if foreign:
            warn_once(f"{foreign} entries of the features cache {folder} are not signed with this user's key (a "
                      f"folder copied from elsewhere?): recomputed, never loaded")
    if missing:
        started = time.perf_counter()
        out[missing] = compute(missing)
        rate = len(missing) / max(time.perf_counter() - started, 1e-9)
        level = logging.INFO if len(missing) >= QUIET_BELOW else logging.DEBUG  # not a line per served request
        log.log(level, "%s: %d %s computed (%.1f/s), %d from the cache", extractor, len(missing), what, rate,
                len(keys) - len(missing))
        if folder is not None:
            for position in missing:
                _save(folder / keys[position], secret, out[position])
    return out


def _load(path: Path, secret: bytes, width: int) -> np.ndarray | None:
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    signature, payload = blob[:32], blob[32:]
    if len(payload) != 4 * width or not hmac.compare_digest(signature, hmac.digest(secret, payload, "sha256")):
        return None
    return np.frombuffer(payload, dtype=np.float32)


def _save(path: Path, secret: bytes, row: np.ndarray) -> None:
    payload = np.ascontiguousarray(row, dtype=np.float32).tobytes()
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(hmac.digest(secret, payload, "sha256") + payload)
    os.replace(temporary, path)
