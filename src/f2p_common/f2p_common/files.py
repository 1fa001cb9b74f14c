"""Durable file writes: the one way f2p writes a file that must never be seen half-written.

:func:`write_atomic` writes to a temporary name in the same folder, fsyncs the file, renames it
over the destination (atomic on POSIX) and fsyncs the folder, so after it returns the file is
on disk whole, and a crash at any moment leaves either the old file or the new one.
:func:`file_sha256` is the digest f2p names files by (sidecars, signatures, dataset shards).
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` (str: UTF-8) to ``path`` durably and atomically; returns the path. The
    folder is created if needed; a failed write leaves no temporary file behind. ``mode``: the
    file's permissions from its creation on (0o600 for a private key: never readable by others,
    not even between the write and a chmod; the umask may only remove bits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.unlink(missing_ok=True)           # a crashed writer's leftover: the new file gets its own mode
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder: the names renamed or created in it are on disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
