"""The learner's model store: one folder per model version, with what the model learned from.

``<store>/<version>/model.pt`` (+ ``.sha256``, and ``.sig`` when signed) and
``<store>/<version>/lineage.json``: the parent version, the failure event ids, the data it was
fine-tuned and validated on, its metrics and the learn report. Adding is idempotent (the same
version again is checked to be the same model — weights, architecture, parent, metrics — and
left alone, its events added to the lineage) and durable (every file written
with ``f2p_common.files.write_atomic``; the folder appears complete or not at all: it is built
under a temporary name and renamed). No ROS.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from f2p_common.files import file_sha256, fsync_dir, write_atomic
from f2p_common.weights import CheckpointError, sidecar_path, signature_path
from f2p_skill_effect.checkpoint import load_checkpoint, sign_checkpoint


#: What a version is: a name, never a path.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class StoredModel:
    """A model in the store: its ``version``, ``path`` (model.pt), whether it is ``signed``."""

    version: str
    path: Path
    signed: bool


class ModelStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def find(self, version: str) -> StoredModel | None:
        """The stored model ``version``, or None (also for a name that is no version: a path, '..')."""
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            return None
        path = self.folder / version / "model.pt"
        return StoredModel(version, path, signature_path(path).is_file()) if path.is_file() else None

    def by_sha256(self, sha256: str) -> StoredModel | None:
        """The stored model whose file has this SHA-256 (its sidecar says), or None."""
        for version in self.versions():
            stored = self.find(version)
            side = sidecar_path(stored.path)
            if side.is_file() and side.read_text().split()[:1] == [sha256.lower()]:
                return stored
        return None

    def versions(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if (p / "model.pt").is_file())

    def add(self, checkpoint: str | os.PathLike, lineage: dict, signing_key: str | os.PathLike | None = None
            ) -> StoredModel:
        """Store ``checkpoint`` (verified first) under its version with ``lineage``; sign it with
        the Ed25519 ``signing_key`` when given. CheckpointError for a checkpoint that does not
        verify or a version already stored with other bytes."""
        src = Path(checkpoint)
        ckpt = load_checkpoint(src)
        if not _VERSION.fullmatch(ckpt.version):
            raise CheckpointError(f"{src}: version {ckpt.version!r} is not a name a store can hold")
        digest = file_sha256(src)
        existing = self.find(ckpt.version)
        if existing is not None:
            if file_sha256(existing.path) != digest:
                if not _same_model(load_checkpoint(existing.path), ckpt):
                    raise CheckpointError(f"version {ckpt.version} is already stored with other bytes "
                                          f"({existing.path})")
                self._also_from(existing, lineage)
            if signing_key and not existing.signed:
                sign_checkpoint(existing.path, signing_key)
                existing = self.find(ckpt.version)
            return existing
        staging = self.folder / f".{ckpt.version}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        write_atomic(staging / "model.pt", src.read_bytes())
        write_atomic(sidecar_path(staging / "model.pt"), f"{digest}  model.pt\n")
        if signing_key:
            sign_checkpoint(staging / "model.pt", signing_key)
        write_atomic(staging / "lineage.json", json.dumps({"version": ckpt.version, "parent_version": ckpt.parent_version,
                                                            "sha256": digest, **lineage}, indent=1, default=str) + "\n")
        os.replace(staging, self.folder / ckpt.version)
        fsync_dir(self.folder)
        return self.find(ckpt.version)

    def _also_from(self, existing: StoredModel, lineage: dict) -> None:
        """Another job gave the very model already stored: its events join the lineage
        (``also_learned_from``), the stored bytes stay as they are."""
        path = existing.path.parent / "lineage.json"
        doc = json.loads(path.read_text())
        known = set(doc.get("event_ids", [])) | {e for x in doc.get("also_learned_from", []) for e in x}
        new = [e for e in lineage.get("event_ids", []) if e not in known]
        if new:
            doc.setdefault("also_learned_from", []).append(new)
            write_atomic(path, json.dumps(doc, indent=1, default=str) + "\n")


def _same_model(a, b) -> bool:
    """The same weights, architecture, parent and metrics: the same model, whatever the paths its
    provenance names (two events that taught the same thing, e.g. one failure recorded twice,
    give it from two job folders)."""
    import torch
    return (a.config == b.config and a.parent_version == b.parent_version and a.metrics == b.metrics
            and a.state_dict.keys() == b.state_dict.keys()
            and all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict))
