"""Models by content: a checkpoint named by its SHA-256 travels in chunks from the machine that has
it (the learner) into a robot's own model cache, across machines that share no disk (issue 46).

The source answers :func:`read_chunk` requests (``f2p_interfaces/FetchModel`` over ROS). The
robot's :class:`ModelCache` fetches a model it does not have, chunk by chunk:

* every chunk carries the SHA-256 of its bytes: a chunk that does not match, or that does not
  fit (another offset, size or model than asked), is refused and asked for again, up to
  ``retries`` times;
* the bytes go to ``<sha256>.part``, appended and fsynced chunk by chunk, so an interrupted
  transfer (the learner restarted, the robot's process killed, the link cut) resumes from what
  is on disk;
* once the last byte is there, the whole file's SHA-256 must be the name asked for; only then is
  it renamed (atomically, the folder fsynced) to ``<sha256>.pt``, after its sidecars
  (``.sha256``; ``.sig``, the source's signature, when it has one). A part that does not hash
  to its name is discarded and fetched once more from the start.

So ``<sha256>.pt`` exists only whole and hashing to its name: nothing half-written is ever
served. Authenticity (the signature, by the learner's key) and fitness (architecture,
vocabulary, the admission probe) are the planner's admission's job
(``f2p_planner.model_slot``), which reads the cached file like any other candidate. No ROS.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from f2p_common.files import file_sha256, fsync_dir, write_atomic
from f2p_common.interfaces import ModelInfo
from f2p_common.weights import CheckpointError, sidecar_path, signature_path

#: A model's name by content: a lowercase hex SHA-256.
SHA256 = re.compile(r"[0-9a-f]{64}")
#: Bytes per chunk unless asked otherwise: well under DDS's comfortable message sizes.
DEFAULT_CHUNK_BYTES = 512 * 1024


class TransferError(CheckpointError):
    """A model that could not be fetched, and why in one word: ``not_found`` (the source has no
    such model, or is not there), ``not_authentic`` (the bytes are not the model named: chunks
    that kept failing their check, a file that does not hash to its name), ``too_large``, or
    ``busy`` (another fetch of the same model is writing it)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ModelChunk:
    """Bytes ``[offset, offset + len(data))`` of the checkpoint ``info.sha256``, a file of ``size``
    bytes; ``chunk_sha256``: the SHA-256 of ``data``. ``info``: the model as its source knows it
    (version, parent, signature; ``uri`` empty: where the source keeps it is its own business)."""

    info: ModelInfo
    size: int
    offset: int
    data: bytes
    chunk_sha256: str


@dataclass(frozen=True)
class FetchResult:
    """A model in the cache: its ``path`` (``<sha256>.pt``), ``info`` (``uri`` the path; signature
    from the source), how many bytes this fetch moved (``fetched_bytes``; 0 when it was cached),
    where it resumed (``resumed_from``) and how many chunks it asked for again (``refetched``)."""

    path: Path
    info: ModelInfo
    fetched_bytes: int = 0
    resumed_from: int = 0
    refetched: int = 0


def check_sha256(sha256: str) -> str:
    """``sha256`` lowercased; ValueError unless it is 64 hex digits."""
    sha = (sha256 or "").strip().lower()
    if not SHA256.fullmatch(sha):
        raise ValueError(f"{sha256!r} is not a SHA-256 (64 hex digits)")
    return sha


def read_chunk(path: str | os.PathLike, info: ModelInfo, offset: int, max_bytes: int = DEFAULT_CHUNK_BYTES
               ) -> ModelChunk:
    """The source's side: bytes from ``offset`` (at most ``max_bytes``; 0 = the default) of the
    file ``path``, which is the model ``info``; no bytes for an offset at or past the end (the
    size tells a fetcher whose partial file is longer than the model to start again)."""
    max_bytes = int(max_bytes) or DEFAULT_CHUNK_BYTES
    if max_bytes < 1 or offset < 0:
        raise ValueError(f"offset {offset} and max_bytes {max_bytes}: neither may be negative")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(min(offset, size))
        data = f.read(max(0, min(max_bytes, size - offset)))
    return ModelChunk(dataclasses.replace(info, uri=""), size, offset, data, hashlib.sha256(data).hexdigest())


#: ``get_chunk(sha256, offset, max_bytes) -> ModelChunk``: one request to the source; raises
#: TransferError (``not_found``) when the source has no such model or does not answer.
ChunkSource = Callable[[str, int, int], ModelChunk]
#: ``progress(bytes on disk, size)`` after each chunk.
Progress = Callable[[int, int], None]


class ModelCache:
    """A robot's models by content (module docstring): ``<folder>/<sha256>.pt``."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = 1 << 30):
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)

    def path(self, sha256: str) -> Path:
        """Where the model ``sha256`` is, once whole."""
        return self.folder / f"{check_sha256(sha256)}.pt"

    def part_path(self, sha256: str) -> Path:
        return self.folder / f"{check_sha256(sha256)}.part"

    def find(self, sha256: str) -> Path | None:
        """The cached model ``sha256``, or None."""
        path = self.path(sha256)
        return path if path.is_file() else None

    def partial_bytes(self, sha256: str) -> int:
        """Bytes of ``sha256`` already on disk from an interrupted fetch."""
        part = self.part_path(sha256)
        return part.stat().st_size if part.is_file() else 0

    def info(self, path: Path, source: ModelInfo | None = None) -> ModelInfo:
        """The cached file's ModelInfo: the source's (version, parent, metrics) with the file's
        uri and signature sidecar."""
        sha = path.name[:-len(".pt")]
        sig = signature_path(path)
        base = source or ModelInfo(name="skill_effect", version="")
        return dataclasses.replace(base, sha256=sha, uri=path.absolute().as_uri(),
                                   signature=sig.read_text().strip() if sig.is_file() else base.signature)

    def prune(self, keep: set[str], max_models: int) -> list[Path]:
        """Remove the least recently written cached models beyond ``max_models``, never one whose
        SHA-256 is in ``keep`` (the model serving and the one a rollback returns to): the removed
        files. Partial fetches stay (a later fetch resumes them)."""
        models = sorted((p for p in self.folder.glob("*.pt") if SHA256.fullmatch(p.stem)),
                        key=lambda p: p.stat().st_mtime_ns, reverse=True)
        removed = []
        for path in models[max(0, int(max_models)):]:
            if path.stem in keep:
                continue
            for f in (sidecar_path(path), signature_path(path), path):
                f.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def fetch(self, sha256: str, get_chunk: ChunkSource, chunk_bytes: int = DEFAULT_CHUNK_BYTES, retries: int = 3,
              progress: Progress = lambda _done, _size: None) -> FetchResult:
        """The model ``sha256`` in the cache, fetched through ``get_chunk`` unless it is there
        already (module docstring). TransferError saying why it is not."""
        sha = check_sha256(sha256)
        found = self.find(sha)
        if found is not None:
            return FetchResult(found, self.info(found))
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.part_path(sha)
        with open(part, "ab") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TransferError(f"model {sha[:16]}...: another fetch is writing it", "busy") from None
            resumed = f.tell()
            moved = refetched = 0
            for attempt in (0, 1):                       # a part that does not hash to its name: once more
                info, n, r = self._download(sha, f, get_chunk, chunk_bytes, retries, progress)
                moved, refetched = moved + n, refetched + r
                if file_sha256(part) == sha:
                    break
                f.truncate(0)
                f.seek(0)
                if attempt:
                    raise TransferError(f"model {sha[:16]}...: the whole file fetched twice does not hash to "
                                        "its name; discarded", "not_authentic")
            final = self.path(sha)
            write_atomic(sidecar_path(final), f"{sha}  {final.name}\n")
            if info.signature:
                write_atomic(signature_path(final), info.signature + "\n")
            os.replace(part, final)                      # the lock goes with the file descriptor's close
        fsync_dir(self.folder)
        return FetchResult(final, self.info(final, info), moved, resumed, refetched)

    def _download(self, sha: str, f, get_chunk: ChunkSource, chunk_bytes: int, retries: int, progress: Progress
                  ) -> tuple[ModelInfo, int, int]:
        """Append chunks to ``f`` from its end to the model's last byte: (the source's info, bytes
        moved, chunks asked for again)."""
        offset = f.seek(0, os.SEEK_END)
        moved = refetched = 0
        size = None
        info = None
        while True:
            for attempt in range(retries + 1):
                try:
                    chunk = get_chunk(sha, offset, chunk_bytes)
                except TransferError as exc:
                    raise TransferError(f"{exc}; {offset} bytes kept for a later fetch", exc.reason) from None
                why = _chunk_problem(chunk, sha, offset, chunk_bytes, size, self.max_bytes)
                if why is None:
                    break
                if why.startswith("too_large"):
                    raise TransferError(f"model {sha[:16]}...: {why}", "too_large")
                refetched += 1
            else:
                raise TransferError(f"model {sha[:16]}...: the chunk at offset {offset} failed its check "
                                    f"{retries + 1} times ({why}); {offset} bytes kept for a later fetch",
                                    "not_authentic")
            size, info = chunk.size, chunk.info
            if offset > size:                            # a part longer than the model: not this model's bytes
                f.truncate(0)
                offset = f.seek(0)
                continue
            f.write(chunk.data)
            f.flush()
            os.fsync(f.fileno())
            offset += len(chunk.data)
            moved += len(chunk.data)
            progress(offset, size)
            if offset == size:
                return info, moved, refetched


def _chunk_problem(chunk: ModelChunk, sha: str, offset: int, chunk_bytes: int, size: int | None,
                   max_bytes: int) -> str | None:
    """Why ``chunk`` is not the one asked for, or None."""
    if chunk.info.sha256.lower() != sha:
        return f"a chunk of another model ({chunk.info.sha256[:16]}...)"
    if chunk.size > max_bytes:
        return f"too_large: {chunk.size} bytes, more than the {max_bytes} a model may have"
    if size is not None and chunk.size != size:
        return f"the model's size changed from {size} to {chunk.size} bytes"
    if offset > chunk.size:
        return None                                      # our part is longer than the model: start again
    if chunk.offset != offset:
        return f"the chunk starts at {chunk.offset}, not {offset}"
    if len(chunk.data) > chunk_bytes or (not chunk.data and offset < chunk.size) \
            or offset + len(chunk.data) > chunk.size:
        return f"{len(chunk.data)} bytes at {offset} of {chunk.size}"
    if hashlib.sha256(chunk.data).hexdigest() != chunk.chunk_sha256.lower():
        return "its bytes do not hash to its chunk_sha256"
    return None

