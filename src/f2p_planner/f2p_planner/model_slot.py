"""The planner's model: which checkpoint serves, how a new one is admitted, swapped and rolled back.

A request takes the active model once (:meth:`ModelSlot.active`) and finishes on it, so a swap
never changes a plan in flight; :meth:`ModelSlot.swap` replaces the active model atomically
between requests and keeps the one it replaced for :meth:`ModelSlot.rollback`. A candidate is
admitted only after :meth:`ModelSlot.admit` checked it, in this order:

1. the file exists and its bytes have the SHA-256 the request names (and its sidecar names);
2. when signatures are required, an Ed25519 signature of that SHA-256 by the configured key
   (``f2p_common.weights.verify_signature``);
3. the checkpoint itself: weights-only load (never unpickled code), content digest, the relation
   and skill vocabularies, an architecture the code knows, weights that fit it;
4. a child (a checkpoint with a parent) must carry the learner's regression-gate verdict
   ``metrics.deployable: true``: nothing unvalidated serves.

A refused candidate changes nothing: the active model keeps serving. No ROS.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from f2p_common.interfaces import ModelInfo
from f2p_common.files import file_sha256
from f2p_common.weights import CheckpointError, verify_signature
from f2p_skill_effect.checkpoint import FORMAT, Checkpoint, load_checkpoint, model_from_checkpoint, model_info
from f2p_skill_effect.model import SkillEffectModel


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint admitted to serve: its model (eval mode), the checkpoint and its info."""

    model: SkillEffectModel
    checkpoint: Checkpoint
    info: ModelInfo

    @property
    def version(self) -> str:
        return self.checkpoint.version


class AdmissionError(CheckpointError):
    """A candidate refused, and why in one word: ``not_found`` (no file to read),
    ``not_authentic`` (not the bytes named: SHA-256 or signature), ``not_admissible`` (it does
    not fit this robot, or its gate refused it)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def path_of(uri: str) -> Path:
    """A checkpoint's path from a ModelInfo uri: a path or a ``file://`` URI (nothing remote)."""
    if not uri:
        raise CheckpointError("the model's uri is empty")
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    raise CheckpointError(f"uri {uri!r}: only local files (a path or file://) can be loaded")


class ModelSlot:
    """The active model and the previous one (module docstring). ``require_signed`` with
    ``public_key``: every admitted checkpoint needs a signature by that key."""

    def __init__(self, initial: str | Path, require_signed: bool = False, public_key: str | Path | None = None):
        if require_signed and not public_key:
            raise ValueError("require_signed needs a public_key to verify signatures with")
        self.require_signed, self.public_key = require_signed, public_key
        self._lock = threading.Lock()
        first = self.admit(model_info(initial))
        self._active: LoadedModel = first
        self._previous: LoadedModel | None = None
        self.history: list[dict] = [{"event": "initial", "version": first.version, "time": time.time()}]

    def active(self) -> LoadedModel:
        """The model serving now (a request keeps this reference until it is done)."""
        return self._active

    def admit(self, info: ModelInfo) -> LoadedModel:
        """The checked, loaded candidate ``info`` names; :class:`AdmissionError` saying why it is refused."""
        try:
            path = path_of(info.uri)
        except CheckpointError as exc:
            raise AdmissionError(str(exc), "not_found") from None
        if not path.is_file():
            raise AdmissionError(f"{path}: no such checkpoint file", "not_found")
        if not info.sha256:
            raise AdmissionError("the request names no sha256 for the checkpoint", "not_authentic")
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise AdmissionError(f"{path}: cannot be read: {exc.strerror or exc}", "not_found") from None
        if digest != info.sha256.lower():
            raise AdmissionError(f"{path}: its SHA-256 is {digest}, the request names {info.sha256}", "not_authentic")
        if self.require_signed:
            try:
                verify_signature(FORMAT, digest, info.signature, self.public_key)
            except CheckpointError as exc:
                raise AdmissionError(str(exc), "not_authentic") from None
        try:
            ckpt = load_checkpoint(path)
            if ckpt.parent_version and ckpt.metrics.get("deployable") is not True:
                raise CheckpointError(f"{path}: a child of {ckpt.parent_version} that the learner's regression gate "
                                      "did not pass (metrics.deployable is not true): it may not serve")
            model = model_from_checkpoint(ckpt)
        except (CheckpointError, ValueError) as exc:
            raise AdmissionError(str(exc), "not_admissible") from None
        return LoadedModel(model, ckpt, model_info(path, ckpt))

    def swap(self, candidate: LoadedModel, requested_by: str = "") -> tuple[ModelInfo, ModelInfo]:
        """Make ``candidate`` active (atomically); (previous info, active info)."""
        with self._lock:
            self._previous, self._active = self._active, candidate
            self.history.append({"event": "swap", "from": self._previous.version, "to": candidate.version,
                                 "requested_by": requested_by, "time": time.time()})
            return self._previous.info, candidate.info

    def rollback(self, requested_by: str = "") -> tuple[ModelInfo, ModelInfo]:
        """Return to the model the last swap replaced; CheckpointError when there is none."""
        with self._lock:
            if self._previous is None:
                raise CheckpointError("no previous model to roll back to")
            self._previous, self._active = self._active, self._previous
            self.history.append({"event": "rollback", "from": self._previous.version, "to": self._active.version,
                                 "requested_by": requested_by, "time": time.time()})
            return self._previous.info, self._active.info
