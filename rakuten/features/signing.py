"""The feature cache's folder and key.

The folder is one only its owner can enter (mode 0700 whatever the umask, its parents made by the
project too; an existing one that others may write is reported once and not used). Every entry is
signed (HMAC-SHA256) at save time and checked before it is loaded, with a key that never lives beside
what it signs: one per user, `~/.config/rakuten/cache.key` (or `$RAKUTEN_CACHE_KEY_FILE`), mode 0600
in a 0700 folder, made once. A cache folder copied from a teammate or a backup, its entries signed
with another key (or re-signed with whatever it holds), is recomputed, never loaded.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import sys
import time
from pathlib import Path

log = logging.getLogger("rakuten.features.cache")
KEY_ENV = "RAKUTEN_CACHE_KEY_FILE"
_reported: set[str] = set()


def key_file() -> Path:
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "rakuten" / "cache.key"


def warn_once(message: str) -> None:
    """A warning the user sees (stderr), once per process."""
    if message not in _reported:
        _reported.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)
        log.debug(message)


def make_private(folder: Path) -> None:
    """`folder` and the parents it lacks, created with mode 0700 whatever the umask."""
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:  # another job made it first
            continue
        os.chmod(created, 0o700)


def _is_private(path: Path) -> bool:
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def private_folder(cache_dir: str | Path) -> Path | None:
    """`cache_dir`, created with mode 0700; None (no cache, said once) when others may write into it."""
    folder = Path(cache_dir)
    make_private(folder)
    if not _is_private(folder):
        warn_once(f"features cache {folder} is not private to this user (owner {folder.stat().st_uid}, mode "
                  f"{stat.filemode(folder.stat().st_mode)}): not used; chmod 700 it or choose another cache.dir")
        return None
    return folder


def secret() -> bytes:
    """This user's cache key, made once (mode 0600) by whichever job comes first."""
    path = key_file()
    make_private(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not _is_private(path) or path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
            raise PermissionError(f"{path}: the feature cache's key must be this user's, mode 0600 "
                                  f"(chmod 600 it, or remove it to make a new one)") from None
        for _ in range(50):  # another job may be writing it right now
            if len(value := path.read_bytes()) == 64:
                return value
            time.sleep(0.05)
        raise ValueError(f"{path} is not a feature cache key (remove it to make a new one)")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_hex(32).encode())
    return path.read_bytes()
