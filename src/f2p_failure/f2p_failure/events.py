"""Failure events F = (O_F, R_F, φ_F, R'_F) (paper 000 §4), with a lossless on-disk form.

When the relations observed after step k of a plan differ from the ones the skill-effect
model predicted, the robot records a failure event (paper 000 §4)::

    F = (O_F = O_{k-1}, R_F = R-hat_{k-1}, φ_F = φ_k, R'_F = R-hat_k)

:class:`FailureEvent` holds F together with what is needed to learn from it and to classify
it (incorrect prediction vs. sim-to-real gap): the model's predicted relations R'_k, the
observation after the step O_k when it was captured, the relation mismatches, and
provenance (robot, plan, step, model version). Field meanings follow
``msg/FailureEvent.msg``; names and orders of relations and skills come from
``f2p_common.vocabulary``, segment classes too.
:meth:`FailureEvent.validate` refuses anything malformed with a :class:`FailureEventError`
naming the field (and segment) at fault. Pure Python + numpy: no ROS import.

On-disk form
------------
One file ``<event_id>.f2pevent`` per event: an uncompressed zip (``ZIP_STORED``, fixed
member timestamps, so the same event always gives the same bytes) with three members:

``event.json``   UTF-8 JSON, sorted keys, no NaN: ``format`` (= :data:`EVENT_FORMAT`), the
                 scalar and list fields (ids, step, model version, segment ids and labels,
                 skill, target, params, category, frame, stamp, mismatches, context), the
                 relation vocabularies the arrays are indexed by and ``arrays`` (dtype and
                 shape of every array below).
``SHA256SUMS``   the SHA-256 of every byte of the two other members, in ``sha256sum``'s
                 format (``unzip -p E.f2pevent SHA256SUMS`` checks by hand): an edited
                 action, label or mismatch list is refused like an edited cloud. (Integrity,
                 not authenticity: anyone can recompute it. Authenticity is the producing
                 robot's Ed25519 signature over the file's bytes, :func:`sign_event`, kept
                 beside it as ``<event_id>.f2pevent.sig``.)
``arrays.npz``   an npz (zip of ``.npy``, no pickles, fixed timestamps) with S segments:

=============================  ==============  ==========================================
name                           shape, dtype    meaning
=============================  ==============  ==========================================
observation_before_points      (ΣP_i,3) f32    O_F: segment clouds concatenated in order
observation_before_counts      (S,) int64      points per segment (all > 0)
observation_after_points       (ΣQ_i,3) f32    O_k, same layout (zero rows if not captured)
observation_after_counts       (S,) or (0,)    points per segment; (0,) = not captured
relations_before_unary         (S,3) uint8     R_F, 0/1
relations_before_binary        (S,S,9) uint8   R_F [subject, object, predicate], 0/1
predicted_after_unary          (S,3) f32       R'_k probabilities
predicted_after_binary         (S,S,9) f32     R'_k probabilities
observed_after_unary           (S,3) uint8     R-hat_k, 0/1
observed_after_binary          (S,S,9) uint8   R-hat_k, 0/1
=============================  ==============  ==========================================

:func:`save_event` validates and writes durably and atomically (``f2p_common.files``), so an
event file that exists is complete. :func:`load_event` checks format, members, checksum, dtypes and shapes,
then validates; every failure is a :class:`FailureEventError` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
import hashlib
import io
import json
import math
import numbers
import os
from pathlib import Path
import re
from typing import Sequence
import uuid
import zipfile

import numpy as np

from f2p_common.files import write_atomic
from f2p_common.interfaces import Plan
from f2p_common.vocabulary import BINARY_RELATIONS, OBJECT_CLASSES, SKILLS, UNARY_RELATIONS

#: Failure categories; the index is the FailureEvent.msg CATEGORY_* constant.
CATEGORIES: tuple[str, ...] = ("unclassified", "incorrect_prediction", "sim_to_real_gap")
#: Format string of ``event.json``; bumped on any incompatible change.
EVENT_FORMAT = "f2p-failure-event/2"
#: File suffix of a stored event.
EVENT_SUFFIX = ".f2pevent"

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_JSON_MEMBER = "event.json"
_ARRAYS_MEMBER = "arrays.npz"
_SUMS_MEMBER = "SHA256SUMS"
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_SEQUENCE = (list, tuple, np.ndarray)
_MISMATCH_KEYS = frozenset({"predicate", "subject", "object", "predicted", "observed"})
_NU, _NB = len(UNARY_RELATIONS), len(BINARY_RELATIONS)
# Relation arrays: field name -> (unary?, probabilities?).
_RELATION_FIELDS = {
    "relations_before_unary": (True, False),
    "relations_before_binary": (False, False),
    "predicted_after_unary": (True, True),
    "predicted_after_binary": (False, True),
    "observed_after_unary": (True, False),
    "observed_after_binary": (False, False),
}
_ARRAY_NAMES = (
    "observation_before_points", "observation_before_counts",
    "observation_after_points", "observation_after_counts",
    *_RELATION_FIELDS,
)


class FailureEventError(ValueError):
    """A failure event, or its file, is malformed."""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


@dataclass(eq=False)
class FailureEvent:
    """A failure event F = (O_F, R_F, φ_F, R'_F) of paper 000 §4; see the module docstring.

    Equality (``==``) is exact: same fields, same array dtypes, shapes and values.
    """

    event_id: str                         # uuid4 string (also the file name)
    robot_id: str
    plan_id: str
    step_index: int                       # 0-based index k of the failed step in its plan
    model_version: str
    segment_ids: list[str]                # object ids, unique, one per segment
    segment_labels: list[str]             # class label per segment, in OBJECT_CLASSES
    observation_before: list[np.ndarray]  # O_F: per segment (P_i, 3) float32, world frame, m
    relations_before_unary: np.ndarray    # R_F: (S, 3) bool
    relations_before_binary: np.ndarray   # R_F: (S, S, 9) bool [subject, object, predicate]
    skill: str                            # φ_F, a SKILLS key
    target: int                           # segment index the skill acted on
    params: list[float]                   # a_F, len == SKILLS[skill].dim
    predicted_after_unary: np.ndarray     # R'_k probabilities (S, 3) float32 in [0, 1]
    predicted_after_binary: np.ndarray    # (S, S, 9) float32 in [0, 1]
    observed_after_unary: np.ndarray      # R-hat_k (S, 3) bool
    observed_after_binary: np.ndarray     # (S, S, 9) bool
    observation_after: list[np.ndarray] = field(default_factory=list)  # O_k, or [] if not captured
    mismatches: list[dict] = field(default_factory=list)
    # {"predicate": str, "subject": int, "object": int | None, "predicted": float, "observed": bool}
    category: str = "unclassified"
    frame_id: str = "world"
    stamp_ns: int = 0
    context: dict = field(default_factory=dict)  # JSON-serialisable extras (task, goal, seeds, camera)

    @staticmethod
    def new_id() -> str:
        """A fresh event id (uuid4 string)."""
        return str(uuid.uuid4())

    @classmethod
    def from_plan_step(cls, plan: Plan, k: int, *, robot_id: str, labels: Sequence[str], before: Sequence[np.ndarray],
                       relations_before: tuple[np.ndarray, np.ndarray], observed_after: tuple[np.ndarray, np.ndarray],
                       after: Sequence[np.ndarray], mismatches: list[dict], context: dict | None = None,
                       frame_id: str = "world", stamp_ns: int = 0) -> "FailureEvent":
        """The event of step ``k`` of ``plan`` (its objects, plan id, model version, skill and
        predicted relations R'_k): ``before`` / ``relations_before`` are O_F and R_F, ``after`` and
        ``observed_after`` O_k and R-hat_k (relations as 0/1 or probabilities, read at 0.5);
        ``after`` may be [] (not captured). Validated; FailureEventError if malformed."""
        skill, target = plan.skeleton[k]
        event = cls(
            event_id=cls.new_id(), robot_id=robot_id, plan_id=plan.plan_id, step_index=int(k),
            model_version=plan.model_version, segment_ids=list(plan.object_ids), segment_labels=list(labels),
            observation_before=[np.asarray(c, np.float32) for c in before],
            relations_before_unary=np.asarray(relations_before[0]) >= 0.5,
            relations_before_binary=np.asarray(relations_before[1]) >= 0.5,
            skill=skill, target=int(target), params=[float(v) for v in plan.parameters[k]],
            predicted_after_unary=np.asarray(plan.step_relations[k]["unary"], np.float32),
            predicted_after_binary=np.asarray(plan.step_relations[k]["binary"], np.float32),
            observed_after_unary=np.asarray(observed_after[0]) >= 0.5,
            observed_after_binary=np.asarray(observed_after[1]) >= 0.5,
            observation_after=[np.asarray(c, np.float32) for c in after], mismatches=mismatches,
            frame_id=frame_id, stamp_ns=int(stamp_ns), context=context or {})
        event.validate()
        return event

    @property
    def num_segments(self) -> int:
        return len(self.segment_ids)

    def __eq__(self, other) -> bool:
        if not isinstance(other, FailureEvent):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in _RELATION_FIELDS:
                if not _arrays_identical(a, b):
                    return False
            elif f.name in ("observation_before", "observation_after"):
                if len(a) != len(b) or not all(_arrays_identical(x, y) for x, y in zip(a, b)):
                    return False
            elif isinstance(a, _SEQUENCE) or isinstance(b, _SEQUENCE):  # ids, labels, params, mismatches
                if not (isinstance(a, _SEQUENCE) and isinstance(b, _SEQUENCE) and list(a) == list(b)):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # mutable

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`FailureEventError` naming the field (and segment) unless well formed."""
        if not isinstance(self.event_id, str) or not self.event_id:
            raise FailureEventError("event_id is empty (use FailureEvent.new_id())")
        if not _ID_PATTERN.fullmatch(self.event_id):
            raise FailureEventError(
                f"event_id {self.event_id!r} is not usable as a file name "
                "(letters, digits, '.', '_', '-' only; use FailureEvent.new_id())")
        for name in ("robot_id", "plan_id", "model_version", "frame_id"):
            if not isinstance(getattr(self, name), str):
                raise FailureEventError(f"{name} must be a str, got {type(getattr(self, name)).__name__}")
        if not _is_int(self.step_index) or self.step_index < 0:
            raise FailureEventError(f"step_index must be an int >= 0, got {self.step_index!r}")
        if not _is_int(self.stamp_ns) or self.stamp_ns < 0:
            raise FailureEventError(f"stamp_ns must be an int >= 0, got {self.stamp_ns!r}")
        if self.category not in CATEGORIES:
            raise FailureEventError(
                f"unknown category {self.category!r}; known: {', '.join(CATEGORIES)}")

        s = self._validate_segments()
        self._validate_clouds("observation_before", self.observation_before, allow_empty=False)
        if len(self.observation_after) not in (0, s):
            raise FailureEventError(
                f"observation_after has {len(self.observation_after)} segments, the event has {s} "
                "(give one cloud per segment, or [] if not captured)")
        # A segment may be unseen after the skill (e.g. put inside a closed drawer).
        self._validate_clouds("observation_after", self.observation_after, allow_empty=True)
        for name, (unary, probs) in _RELATION_FIELDS.items():
            _check_relation_array(name, getattr(self, name), s, unary, probs)

        self._validate_skill(s)
        self._validate_mismatches(s)
        _check_context(self.context)

    def _validate_segments(self) -> int:
        s = len(self.segment_ids)
        if s == 0:
            raise FailureEventError("event has no segments (segment_ids is empty)")
        if len(self.segment_labels) != s or len(self.observation_before) != s:
            raise FailureEventError(
                f"segment count mismatch: {s} segment_ids, {len(self.segment_labels)} segment_labels, "
                f"{len(self.observation_before)} observation_before clouds")
        seen = set()
        for i, (sid, label) in enumerate(zip(self.segment_ids, self.segment_labels)):
            if not isinstance(sid, str) or not sid:
                raise FailureEventError(f"segment {i}: id must be a non-empty str, got {sid!r}")
            if sid in seen:
                raise FailureEventError(f"segment {i}: duplicate segment id {sid!r}")
            seen.add(sid)
            if label not in OBJECT_CLASSES:
                raise FailureEventError(
                    f"segment {i} ({sid!r}): unknown label {label!r}; known: {', '.join(OBJECT_CLASSES)}")
        return s

    def _validate_clouds(self, name: str, clouds, allow_empty: bool) -> None:
        if not isinstance(clouds, (list, tuple)):
            raise FailureEventError(f"{name} must be a list of (P, 3) arrays, got {type(clouds).__name__}")
        for i, cloud in enumerate(clouds):
            where = f"{name}[{i}] (segment {self.segment_ids[i]!r})"
            if not isinstance(cloud, np.ndarray) or cloud.ndim != 2 or cloud.shape[1] != 3:
                shape = getattr(cloud, "shape", type(cloud).__name__)
                raise FailureEventError(f"{where}: must be a (P, 3) numpy array, got {shape}")
            if cloud.dtype != np.float32:
                raise FailureEventError(f"{where}: must be float32, got {cloud.dtype} (use .astype(np.float32))")
            if cloud.shape[0] == 0 and not allow_empty:
                raise FailureEventError(f"{where}: missing segment (empty point cloud)")
            if not np.isfinite(cloud).all():
                raise FailureEventError(f"{where}: cloud contains NaN or inf")

    def _validate_skill(self, s: int) -> None:
        if self.skill not in SKILLS:
            raise FailureEventError(f"unknown skill {self.skill!r}; known: {', '.join(SKILLS)}")
        if not _is_int(self.target) or not 0 <= self.target < s:
            raise FailureEventError(f"target {self.target!r} out of range for {s} segments")
        if isinstance(self.params, (str, bytes)) or not hasattr(self.params, "__len__"):
            raise FailureEventError(f"params must be a list of floats, got {type(self.params).__name__}")
        for j, p in enumerate(self.params):
            if not _is_real(p):
                raise FailureEventError(f"params[{j}] is not a real number: {p!r}")
            if not math.isfinite(p):
                raise FailureEventError(f"params[{j}] is not finite: {p}")
        try:
            SKILLS[self.skill].check(self.params)
        except ValueError as e:
            raise FailureEventError(f"bad params {list(self.params)}: {e}") from None

    def _validate_mismatches(self, s: int) -> None:
        if not isinstance(self.mismatches, (list, tuple)):
            raise FailureEventError(f"mismatches must be a list of dicts, got {type(self.mismatches).__name__}")
        for n, m in enumerate(self.mismatches):
            where = f"mismatches[{n}]"
            if not isinstance(m, dict) or set(m) != _MISMATCH_KEYS:
                keys = sorted(m) if isinstance(m, dict) else type(m).__name__
                raise FailureEventError(f"{where}: must be a dict with keys {sorted(_MISMATCH_KEYS)}, got {keys}")
            pred = m["predicate"]
            if pred in UNARY_RELATIONS:
                unary = True
            elif pred in BINARY_RELATIONS:
                unary = False
            else:
                raise FailureEventError(
                    f"{where}: unknown predicate {pred!r}; known: {', '.join(UNARY_RELATIONS + BINARY_RELATIONS)}")
            if not _is_int(m["subject"]) or not 0 <= m["subject"] < s:
                raise FailureEventError(f"{where}: subject {m['subject']!r} out of range for {s} segments")
            obj = m["object"]
            if unary and obj is not None:
                raise FailureEventError(f"{where}: unary predicate {pred!r} takes object None, got {obj!r}")
            if not unary and (not _is_int(obj) or not 0 <= obj < s):
                raise FailureEventError(f"{where}: object {obj!r} out of range for {s} segments")
            p = m["predicted"]
            if not _is_real(p) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
                raise FailureEventError(f"{where}: predicted must be a probability in [0, 1], got {p!r}")
            if not isinstance(m["observed"], (bool, np.bool_)):
                raise FailureEventError(f"{where}: observed must be a bool, got {m['observed']!r}")
            # A mismatch summarises the arrays: its values are theirs (so the event converts to
            # a message and back without loss).
            if unary:
                k = UNARY_RELATIONS.index(pred)
                in_pred, in_obs = self.predicted_after_unary[m["subject"], k], self.observed_after_unary[m["subject"], k]
            else:
                k = BINARY_RELATIONS.index(pred)
                in_pred = self.predicted_after_binary[m["subject"], obj, k]
                in_obs = self.observed_after_binary[m["subject"], obj, k]
            if float(p) != float(in_pred):
                raise FailureEventError(f"{where}: predicted {p!r} is not predicted_after's {float(in_pred)!r}")
            if bool(m["observed"]) != bool(in_obs):
                raise FailureEventError(f"{where}: observed {bool(m['observed'])} is not observed_after's {bool(in_obs)}")


def _arrays_identical(a, b) -> bool:
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
            and a.shape == b.shape and bool(np.array_equal(a, b)))


def _check_relation_array(name: str, arr, s: int, unary: bool, probs: bool) -> None:
    shape = (s, _NU) if unary else (s, s, _NB)
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        got = getattr(arr, "shape", type(arr).__name__)
        raise FailureEventError(f"{name}: shape must be {shape} (S={s} segments), got {got}")
    if probs:
        if arr.dtype != np.float32:
            raise FailureEventError(f"{name}: must be float32 probabilities, got {arr.dtype}")
        if not np.isfinite(arr).all():
            raise FailureEventError(f"{name}: contains NaN or inf")
        if (arr < 0).any() or (arr > 1).any():
            bad = tuple(int(i) for i in np.argwhere((arr < 0) | (arr > 1))[0])
            raise FailureEventError(f"{name}: probability {float(arr[bad])} at {bad} is outside [0, 1]")
    elif arr.dtype != np.bool_:
        raise FailureEventError(f"{name}: must be bool, got {arr.dtype} (use .astype(bool))")
    if not unary and np.any(arr[np.arange(s), np.arange(s)]):
        raise FailureEventError(f"{name}: a segment has no relation with itself (the diagonal must be 0)")


def _check_context(context) -> None:
    if not isinstance(context, dict):
        raise FailureEventError(f"context must be a dict, got {type(context).__name__}")
    try:
        same = json.loads(json.dumps(context, allow_nan=False)) == context
    except (TypeError, ValueError) as e:
        raise FailureEventError(f"context is not JSON-serialisable: {e}") from None
    if not same:
        raise FailureEventError(
            "context does not survive JSON unchanged (use str keys and lists, not tuples)")


# ---------------------------------------------------------------------- storage
def _flatten(clouds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.array([c.shape[0] for c in clouds], dtype=np.int64)
    points = (np.concatenate(clouds, axis=0) if clouds else np.zeros((0, 3), np.float32)).astype(np.float32)
    return np.ascontiguousarray(points), counts


def _unflatten(points: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    ends = np.cumsum(counts)
    return [points[e - c:e].copy() for c, e in zip(counts.tolist(), ends.tolist())]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    return buf.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    members = {}
    for name, arr in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
        members[name + ".npy"] = buf.getvalue()
    return _zip_bytes(members)


def _event_arrays(event: FailureEvent) -> dict[str, np.ndarray]:
    before_points, before_counts = _flatten(event.observation_before)
    after_points, after_counts = _flatten(event.observation_after)
    arrays = {
        "observation_before_points": before_points,
        "observation_before_counts": before_counts,
        "observation_after_points": after_points,
        "observation_after_counts": after_counts,
    }
    for name, (_, probs) in _RELATION_FIELDS.items():
        arr = getattr(event, name)
        arrays[name] = arr.astype(np.float32) if probs else arr.astype(np.uint8)
    return arrays


def _canonical_mismatch(m: dict) -> dict:
    obj = m["object"]
    return {"predicate": str(m["predicate"]), "subject": int(m["subject"]),
            "object": None if obj is None else int(obj),
            "predicted": float(m["predicted"]), "observed": bool(m["observed"])}


def event_path(folder: str | os.PathLike, event_id: str) -> Path:
    """Where :func:`save_event` puts the event ``event_id`` in ``folder``."""
    return Path(folder) / f"{event_id}{EVENT_SUFFIX}"


def save_event(event: FailureEvent, folder: str | os.PathLike) -> Path:
    """Validate ``event`` and write it atomically to ``<folder>/<event_id>.f2pevent``.

    The folder is created if needed. The bytes depend on the event only. Returns the path.
    """
    return write_atomic(event_path(folder, event.event_id), event_bytes(event))


def event_bytes(event: FailureEvent) -> bytes:
    """The on-disk form of a (validated) ``event``: the same event always gives the same bytes,
    on the robot and on the learner, which is what :func:`sign_event` signs."""
    event.validate()
    arrays = _event_arrays(event)
    npz = _npz_bytes(arrays)
    doc = {
        "format": EVENT_FORMAT,
        "event_id": event.event_id,
        "robot_id": event.robot_id,
        "plan_id": event.plan_id,
        "step_index": int(event.step_index),
        "model_version": event.model_version,
        "segment_ids": list(event.segment_ids),
        "segment_labels": list(event.segment_labels),
        "skill": event.skill,
        "target": int(event.target),
        "params": [float(p) for p in event.params],
        "mismatches": [_canonical_mismatch(m) for m in event.mismatches],
        "category": event.category,
        "frame_id": event.frame_id,
        "stamp_ns": int(event.stamp_ns),
        "context": event.context,
        "vocabulary": {"unary_relations": list(UNARY_RELATIONS), "binary_relations": list(BINARY_RELATIONS)},
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
    }
    text = (json.dumps(doc, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")
    return _zip_bytes({_JSON_MEMBER: text, _ARRAYS_MEMBER: npz, _SUMS_MEMBER: sha256sums({_JSON_MEMBER: text,
                                                                                         _ARRAYS_MEMBER: npz})})


def _signed_message(event: FailureEvent) -> bytes:
    return f"{EVENT_FORMAT}\n{event.robot_id}\n{hashlib.sha256(event_bytes(event)).hexdigest()}".encode()


def sign_event(event: FailureEvent, private_key: str | os.PathLike) -> str:
    """The producing robot's Ed25519 signature (hex) of ``event``: its format, its ``robot_id`` and
    the SHA-256 of its bytes (:func:`event_bytes`). ``SHA256SUMS`` is integrity only (anyone can
    recompute it); this is authenticity (issue 43)."""
    from f2p_common import keys
    return keys.sign(private_key, _signed_message(event))


def verify_event(event: FailureEvent, signature: str, public_key: str | os.PathLike) -> None:
    """``f2p_common.keys.SignatureError`` unless ``signature`` is the owner of ``public_key``'s
    signature of exactly this event."""
    from f2p_common import keys
    keys.verify(public_key, _signed_message(event), signature, f"failure event {event.event_id}")


_REQUIRED_KEYS = ("format", "event_id", "robot_id", "plan_id", "step_index", "model_version",
                  "segment_ids", "segment_labels", "skill", "target", "params", "mismatches",
                  "category", "frame_id", "stamp_ns", "context", "vocabulary", "arrays")


def sha256sums(members: dict[str, bytes]) -> bytes:
    """``sha256sum``'s listing of ``members`` (name -> bytes), sorted by name."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(members.items())).encode()


def load_event(path: str | os.PathLike) -> FailureEvent:
    """Read and validate an event written by :func:`save_event`.

    FailureEventError naming the file if it is missing, truncated or not a zip, lacks a
    member, has another format, fails its checksum, or holds a malformed event.
    """
    path = Path(path)
    if not path.is_file():
        raise FailureEventError(f"failure event file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for member in (_JSON_MEMBER, _ARRAYS_MEMBER):
                if member not in names:
                    raise FailureEventError(f"{path}: missing member {member!r} (not a failure event?)")
            text = zf.read(_JSON_MEMBER)
            npz = zf.read(_ARRAYS_MEMBER)
            sums = zf.read(_SUMS_MEMBER) if _SUMS_MEMBER in names else None
    except FailureEventError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise FailureEventError(f"{path}: corrupt or truncated failure event file: {e}") from None

    try:
        doc = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FailureEventError(f"{path}: {_JSON_MEMBER} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise FailureEventError(f"{path}: {_JSON_MEMBER} must hold a JSON object")
    if doc.get("format") != EVENT_FORMAT:
        raise FailureEventError(f"{path}: format {doc.get('format')!r}, this loader reads {EVENT_FORMAT!r}")
    if sums is None:
        raise FailureEventError(f"{path}: missing member {_SUMS_MEMBER!r}: its content cannot be checked")
    if sums != sha256sums({_JSON_MEMBER: text, _ARRAYS_MEMBER: npz}):
        raise FailureEventError(f"{path}: its members do not match their sha256 in {_SUMS_MEMBER} "
                                "(file tampered or corrupt)")
    missing = [k for k in _REQUIRED_KEYS if k not in doc]
    if missing:
        raise FailureEventError(f"{path}: {_JSON_MEMBER} lacks {missing}")
    vocab = {"unary_relations": list(UNARY_RELATIONS), "binary_relations": list(BINARY_RELATIONS)}
    if doc["vocabulary"] != vocab:
        raise FailureEventError(
            f"{path}: written with relation vocabulary {doc['vocabulary']}, this code uses {vocab}")

    arrays = _read_arrays(path, npz, doc["arrays"])
    try:
        event = FailureEvent(
            event_id=doc["event_id"], robot_id=doc["robot_id"], plan_id=doc["plan_id"],
            step_index=doc["step_index"], model_version=doc["model_version"],
            segment_ids=doc["segment_ids"], segment_labels=doc["segment_labels"],
            observation_before=_unflatten(arrays["observation_before_points"],
                                          arrays["observation_before_counts"]),
            skill=doc["skill"], target=doc["target"], params=doc["params"],
            observation_after=_unflatten(arrays["observation_after_points"],
                                         arrays["observation_after_counts"]),
            mismatches=doc["mismatches"], category=doc["category"], frame_id=doc["frame_id"],
            stamp_ns=doc["stamp_ns"], context=doc["context"],
            **{name: arrays[name] for name in _RELATION_FIELDS},
        )
        event.validate()
    except FailureEventError as e:
        raise FailureEventError(f"{path}: {e}") from None
    return event


def _read_arrays(path: Path, npz: bytes, declared) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise FailureEventError(f"{path}: corrupt {_ARRAYS_MEMBER}: {e}") from None
    if not isinstance(declared, dict) or set(arrays) != set(_ARRAY_NAMES) or set(declared) != set(_ARRAY_NAMES):
        raise FailureEventError(
            f"{path}: {_ARRAYS_MEMBER} holds {sorted(arrays)}, expected {sorted(_ARRAY_NAMES)}")
    for name, arr in arrays.items():
        want = declared[name]
        if not isinstance(want, dict) or want.get("dtype") != arr.dtype.str or want.get("shape") != list(arr.shape):
            raise FailureEventError(
                f"{path}: array {name} is {arr.dtype.str} {list(arr.shape)}, event.json says {want}")

    out = {}
    for prefix in ("observation_before", "observation_after"):
        points, counts = arrays[prefix + "_points"], arrays[prefix + "_counts"]
        if (points.dtype != np.float32 or points.ndim != 2 or points.shape[1] != 3
                or counts.dtype != np.int64 or counts.ndim != 1
                or (counts < 0).any() or int(counts.sum()) != points.shape[0]):
            raise FailureEventError(
                f"{path}: {prefix} points {points.dtype} {points.shape} do not match counts {counts.tolist()}")
        out[prefix + "_points"], out[prefix + "_counts"] = points, counts
    for name, (_, probs) in _RELATION_FIELDS.items():
        arr = arrays[name]
        if probs:
            if arr.dtype != np.float32:
                raise FailureEventError(f"{path}: array {name} must be float32, is {arr.dtype}")
            out[name] = arr
        else:
            if arr.dtype != np.uint8 or (arr > 1).any():
                raise FailureEventError(f"{path}: array {name} must be 0/1 uint8")
            out[name] = arr.astype(bool)
    return out


def list_events(folder: str | os.PathLike) -> list[Path]:
    """The ``*.f2pevent`` files in ``folder``, sorted by name; [] if the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*" + EVENT_SUFFIX) if p.is_file())


def failure_signature(event: FailureEvent) -> str:
    """Which failure ``event`` describes, as a name robots share (issue 46: the same failure met by
    several robots is learned once). Two events name the same failure when they agree on

    * the model that failed (``model_version``) and the task kind (``context["task"]``, if any),
    * the skill and its target's class,
    * the mismatched relations by class: (predicate, subject class, object class, observed),
    * the symbolic state around the step: every relation that held before it among the target and
      the mismatches' objects, by class;
    * the scene's objects by class (how many of each): a failure among three objects is not the
      one among five (measured: merged across scene sizes, a child that fixed one robot's task
      left the other's failing; ``benchmarks/same_failure.py``).

    Positions and ids are not part of it: every robot has its own frame, layout and object ids,
    and Fail2Progress infers the states around a failure in simulation itself (paper 000 §4.2).
    Two objects of one class are not told apart (a cup in a bin and a cup beside it differ by
    their relations, which are in the name). SHA-256 (hex) of the canonical form."""
    labels = event.segment_labels
    involved = {int(event.target)} | {int(m["subject"]) for m in event.mismatches} | {
        int(m["object"]) for m in event.mismatches if m["object"] is not None}
    mismatches = sorted((str(m["predicate"]), labels[int(m["subject"])],
                         "" if m["object"] is None else labels[int(m["object"])], bool(m["observed"]))
                        for m in event.mismatches)
    before = sorted([(UNARY_RELATIONS[p], labels[i], "") for i in involved
                     for p in np.flatnonzero(event.relations_before_unary[i])] +
                    [(BINARY_RELATIONS[p], labels[i], labels[j]) for i in involved for j in involved if i != j
                     for p in np.flatnonzero(event.relations_before_binary[i, j])])
    task = event.context.get("task") if isinstance(event.context, dict) else None
    canonical = {"model": event.model_version, "task": task if isinstance(task, str) else "",
                 "skill": event.skill, "target": labels[int(event.target)], "mismatches": mismatches,
                 "before": before, "scene": sorted(labels)}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
