"""The feature cache's folder and secret: a folder only its owner can enter (mode 0700; one that
others may write is not used), and a secret made once in it (mode 0600), with which every entry is
signed (HMAC-SHA256) at save time and checked before it is loaded: a pickle or a number planted in
the cache is never used."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
from pathlib import Path

log = logging.getLogger("rakuten.features.cache")
SECRET_FILE = ".secret"


def private_folder(cache_dir: str | Path) -> Path | None:
    """`cache_dir`, created with mode 0700; None (no cache) when others may write into it."""
    folder = Path(cache_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("features cache %s is not private to this user (owner or mode): not used", folder)
        return None
    return folder


def secret(folder: Path) -> bytes:
    """The cache's secret, made once (mode 0600) by whichever job comes first."""
    path = folder / SECRET_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another job may be writing it right now
            if len(value := path.read_bytes()) == 64:
                return value
            time.sleep(0.05)
        raise ValueError(f"{path} is not a cache secret")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_hex(32).encode())
    return path.read_bytes()
