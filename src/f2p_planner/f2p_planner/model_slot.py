"""The planner's model: which checkpoint serves, how a new one is admitted, swapped and rolled back.

A request takes the active model once (:meth:`ModelSlot.active`) and finishes on it, so a swap
never changes a plan in flight; :meth:`ModelSlot.swap` replaces the active model atomically
between requests and keeps the one it replaced for :meth:`ModelSlot.rollback`. A candidate is
admitted only after :meth:`ModelSlot.admit` checked it, under an :class:`AdmissionPolicy`, in
this order:

1. where it is: a local path or ``file://`` URI whose real path (links resolved) lies inside one
   of the policy's ``model_dirs`` or the initial checkpoint's folder (``not_permitted``
   otherwise: a client cannot make the planner read, and return the digest of, any file);
2. the file is read **once** into memory (a regular file of at most ``max_bytes``); every
   later check runs on these bytes, so a file changed between the checks cannot slip in
   (issue 43: a flipped link let unsigned models in);
3. its SHA-256 is the request's, and with ``require_signed`` an Ed25519 signature of that digest
   by ``public_key`` verifies (``f2p_common.weights.verify_signature``);
4. the checkpoint itself, from those bytes: weights-only load (never unpickled code), content
   digest, f2p's vocabularies, an architecture this code knows and that of the model serving
   (a swap replaces weights; another architecture is a reconfiguration), a version string that
   has never named other bytes here, and for a child (a checkpoint with a parent) the learner's
   regression-gate verdict ``metrics.deployable: true``;
5. a smoke test of the built model: every weight finite; on the admission probe
   (``f2p_skill_effect.probe``: fixed, labelled scenes) every output a finite probability,
   detection micro F1 at least ``min_detection_f1`` and next-step accuracy at least
   ``min_next_step_accuracy`` (NaN, zeroed or random weights score 0 / 0.28 / 0.32).

A refused candidate changes nothing: the active model keeps serving. No ROS.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch

from f2p_common.interfaces import ModelInfo
from f2p_common.weights import CheckpointError, verify_signature
from f2p_skill_effect.checkpoint import (FORMAT, Checkpoint, load_checkpoint_bytes, model_from_checkpoint,
                                         model_info)
from f2p_skill_effect.model import SkillEffectModel
from f2p_skill_effect.probe import load_probe, probe_scores, shipped_probe


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint admitted to serve: its model (eval mode), the checkpoint and its info."""

    model: SkillEffectModel
    checkpoint: Checkpoint
    info: ModelInfo

    @property
    def version(self) -> str:
        return self.checkpoint.version


@dataclass(frozen=True)
class AdmissionPolicy:
    """What a checkpoint must pass to serve (module docstring). ``require_signed`` with
    ``public_key`` (PEM): a signature by that key; ``model_dirs``: the folders candidates may come
    from (the initial checkpoint's folder always may); ``probe``: the admission probe (None = the
    shipped one) and the least ``min_detection_f1`` / ``min_next_step_accuracy`` on it (0 turns
    the quality floor off; finiteness is always checked); ``max_bytes``: the largest file read."""

    require_signed: bool = False
    public_key: str | Path | None = None
    model_dirs: tuple[Path, ...] = ()
    probe: Path | None = None
    min_detection_f1: float = 0.8
    min_next_step_accuracy: float = 0.85
    max_bytes: int = 1 << 30

    def __post_init__(self):
        if self.require_signed and not self.public_key:
            raise ValueError("require_signed needs a public_key to verify signatures with")
        for name in ("min_detection_f1", "min_next_step_accuracy"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be positive")


class AdmissionError(CheckpointError):
    """A candidate refused, and why in one word: ``not_found`` (no file to read),
    ``not_permitted`` (outside the model folders), ``not_authentic`` (not the bytes named:
    SHA-256 or signature), ``not_admissible`` (it does not fit this robot, fails the smoke test,
    or its gate refused it)."""

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
    """The active model and the previous one (module docstring); ``initial`` goes through the
    same admission as every candidate."""

    def __init__(self, initial: str | Path, policy: AdmissionPolicy = AdmissionPolicy()):
        self.policy = policy
        initial = Path(initial)
        # the initial checkpoint's folder, as named and where its file really is (a symlink install)
        self._dirs = tuple(dict.fromkeys(Path(os.path.realpath(d)) for d in (*policy.model_dirs, initial.parent)))
        self._dirs += (Path(os.path.realpath(initial)).parent,)
        self._lock = threading.Lock()
        self._probe: dict | None = None
        self._versions: dict[str, str] = {}            # every version admitted here -> its file's SHA-256
        self._active: LoadedModel | None = None
        self._previous: LoadedModel | None = None
        try:
            info = model_info(initial)
        except (CheckpointError, OSError) as exc:
            raise AdmissionError(f"initial checkpoint {initial}: {exc}", "not_admissible") from None
        first = self.admit(info)
        self._active = first
        self.history: list[dict] = [{"event": "initial", "version": first.version, "time": time.time()}]

    def active(self) -> LoadedModel:
        """The model serving now (a request keeps this reference until it is done)."""
        return self._active

    def admit(self, info: ModelInfo) -> LoadedModel:
        """The checked, loaded candidate ``info`` names; :class:`AdmissionError` saying why it is refused."""
        path, data = self._read(info)
        digest = hashlib.sha256(data).hexdigest()
        if not info.sha256:
            raise AdmissionError("the request names no sha256 for the checkpoint", "not_authentic")
        if digest != info.sha256.lower():
            raise AdmissionError(f"{path}: its SHA-256 is {digest}, the request names {info.sha256}", "not_authentic")
        if self.policy.require_signed:
            try:
                verify_signature(FORMAT, digest, info.signature, self.policy.public_key)
            except CheckpointError as exc:
                raise AdmissionError(str(exc), "not_authentic") from None
        try:
            ckpt = load_checkpoint_bytes(data, digest, str(path))
            self._check_fits(ckpt, digest)
            model = model_from_checkpoint(ckpt)
            self._smoke_test(model, ckpt)
        except (CheckpointError, ValueError) as exc:
            raise AdmissionError(str(exc), "not_admissible") from None
        with self._lock:
            self._versions.setdefault(ckpt.version, digest)
        loaded_info = dataclasses.replace(model_info(path, ckpt), sha256=digest, signature=info.signature or "")
        return LoadedModel(model, ckpt, loaded_info)

    def _read(self, info: ModelInfo) -> tuple[Path, bytes]:
        try:
            path = path_of(info.uri)
        except CheckpointError as exc:
            raise AdmissionError(str(exc), "not_found") from None
        real = Path(os.path.realpath(path))
        if not any(real == d or d in real.parents for d in self._dirs):
            raise AdmissionError(f"{path} lies outside the planner's model folders "
                                 f"({', '.join(str(d) for d in self._dirs)}): not read", "not_permitted")
        try:
            with open(real, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise AdmissionError(f"{path} is not a regular file", "not_found")
                if st.st_size > self.policy.max_bytes:
                    raise AdmissionError(f"{path}: {st.st_size} bytes, more than the {self.policy.max_bytes} a "
                                         "checkpoint may have", "not_admissible")
                data = f.read(self.policy.max_bytes + 1)
        except FileNotFoundError:
            raise AdmissionError(f"{path}: no such checkpoint file", "not_found") from None
        except OSError as exc:
            raise AdmissionError(f"{path}: cannot be read: {exc.strerror or exc}", "not_found") from None
        if len(data) > self.policy.max_bytes:
            raise AdmissionError(f"{path} grew past {self.policy.max_bytes} bytes while read", "not_admissible")
        return path, data

    def _check_fits(self, ckpt: Checkpoint, digest: str) -> None:
        known = self._versions.get(ckpt.version)
        if known is not None and known != digest:
            raise CheckpointError(f"version {ckpt.version} already named other bytes here (sha256 {known[:16]}...): "
                                  "a version is never reused for another model")
        serving = self._active
        if serving is not None and ckpt.config != serving.checkpoint.config:
            diff = {k: (v, getattr(serving.checkpoint.config, k)) for k, v in ckpt.config.__dict__.items()
                    if getattr(serving.checkpoint.config, k) != v}
            raise CheckpointError(f"checkpoint {ckpt.version} has another architecture than the model serving "
                                  f"({diff}: candidate, serving); reconfigure the planner to change architecture")
        if ckpt.parent_version and ckpt.metrics.get("deployable") is not True:
            raise CheckpointError(f"a child of {ckpt.parent_version} that the learner's regression gate did not pass "
                                  "(metrics.deployable is not true): it may not serve")

    def _smoke_test(self, model: SkillEffectModel, ckpt: Checkpoint) -> None:
        bad = [n for n, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise CheckpointError(f"checkpoint {ckpt.version}: {len(bad)} weight tensor(s) hold NaN or infinity "
                                  f"({', '.join(bad[:3])}...)")
        if self._probe is None:
            try:
                self._probe = load_probe(self.policy.probe or shipped_probe(), model.cfg.max_objects)
            except (ValueError, OSError) as exc:
                raise CheckpointError(f"cannot run the admission probe: {exc}") from None
        scores = probe_scores(model, self._probe)
        p = self.policy
        if not scores.finite:
            raise CheckpointError(f"checkpoint {ckpt.version}: outputs on the admission probe are not all finite "
                                  "probabilities")
        if scores.detection_f1 < p.min_detection_f1 or scores.next_step_accuracy < p.min_next_step_accuracy:
            raise CheckpointError(
                f"checkpoint {ckpt.version} fails the admission probe: detection F1 {scores.detection_f1:.3f} "
                f"(least {p.min_detection_f1:g}), next-step accuracy {scores.next_step_accuracy:.3f} "
                f"(least {p.min_next_step_accuracy:g}) on {scores.transitions} probe transitions")

    def swap(self, candidate: LoadedModel, requested_by: str = "") -> tuple[ModelInfo, ModelInfo]:
        """Make ``candidate`` active (atomically); (previous info, active info)."""
        with self._lock:
            self._previous, self._active = self._active, candidate
            self.history.append({"event": "swap", "from": self._previous.version, "to": candidate.version,
                                 "requested_by": requested_by, "time": time.time()})
            return self._previous.info, candidate.info

    def rollback(self, requested_by: str = "") -> tuple[ModelInfo, ModelInfo]:
        """Return to the model the last swap replaced, once (a second rollback has nothing to return
        to: it never flips back); CheckpointError when there is none."""
        with self._lock:
            if self._previous is None:
                raise CheckpointError("no previous model to roll back to")
            replaced, self._active, self._previous = self._active, self._previous, None
            self.history.append({"event": "rollback", "from": replaced.version, "to": self._active.version,
                                 "requested_by": requested_by, "time": time.time()})
            return replaced.info, self._active.info
