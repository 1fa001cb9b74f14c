"""What f2p's nodes exchange, as plain dataclasses: one per f2p_interfaces message.

Algorithms take and return these; the ROS side converts them to and from messages in one
place (``f2p_ros.conversions``), losslessly: every field here has a field in the message and
every value survives the round trip (scores and probabilities are kept at the message's
float32 precision for that reason). No ROS import.

=====================  =============================  ========================================
dataclass              message                        produced by
=====================  =============================  ========================================
:class:`CameraCloud`   sensor_msgs/PointCloud2        a depth camera driver, the simulated robot
:class:`OrientedBox`   f2p_interfaces/OrientedBox     perception
:class:`SegmentedObject`  SegmentedObject             perception, simulated camera
:class:`SegmentedScene`   SegmentedScene              perception, simulated camera
:class:`RelationState`    RelationState               relation detector, planner (predicted)
:class:`SkillCall`        SkillCall                   executor, planner
:class:`Plan`             Plan                        planner (``f2p_skill_effect.planner``)
:class:`ModelInfo`        ModelInfo                   checkpoint store (``f2p_skill_effect.checkpoint``)
``FailureEvent``          FailureEvent                failure detection (``f2p_failure.events``)
:class:`Shape`            visualization_msgs/Marker   the visualizer (``f2p_viz.drawing``)
=====================  =============================  ========================================

Frames and units follow REP-103: metres, right-handed, x forward, z up; ``frame_id`` names
the frame, ``stamp_ns`` the capture time in nanoseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

from f2p_common.frames import quaternion_matrix
from f2p_common.vocabulary import (BINARY_RELATIONS, OBJECT_CLASSES, UNARY_RELATIONS, check_object_class, is_unary,
                                   skill as skill_spec)

class PointCloudError(ValueError):
    """A point cloud that cannot be used as it is (missing fields, NaN points, empty, ...);
    the message says why."""


#: A goal literal over object indices: (predicate, subject index, object index or None).
GoalLiteral = tuple


def float32_exact(value: float) -> float:
    """``value`` rounded to float32, as a Python float (what a float32 message field holds)."""
    return float(np.float32(value))


def arrays_identical(a, b) -> bool:
    """Same dtype, shape and values (NaN equal to NaN); both None counts as identical."""
    if a is None or b is None:
        return a is None and b is None
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f")))


def _fields_equal(a, b) -> bool:
    """Dataclass equality with numpy arrays (and lists of them) compared by :func:`arrays_identical`."""
    if type(a) is not type(b):
        return False
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not arrays_identical(x, y):
                return False
        elif isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if len(x) != len(y) or not all(
                    arrays_identical(p, q) if isinstance(p, np.ndarray) or isinstance(q, np.ndarray) else p == q
                    for p, q in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


# ---------------------------------------------------------------------------- camera clouds
#: ``instance`` / ``label`` value of a point that belongs to no object (floor, walls, unknown).
NO_OBJECT = -1


def finite_rows(points: np.ndarray) -> np.ndarray:
    """(N,) mask of the rows of ``points`` (N, 3) with three finite coordinates. Column by
    column: ``np.isfinite(points).all(axis=1)`` takes 5 ms on a 640x480 cloud, this 0.2 ms."""
    p = np.asarray(points)
    return np.isfinite(p[:, 0]) & np.isfinite(p[:, 1]) & np.isfinite(p[:, 2])


def instance_object_id(label: str, instance: int) -> str:
    """The object id of instance ``instance`` of class ``label``, e.g. ``cup_3``: the one naming
    rule of objects seen through a segmenting camera (the simulated robot names its task goals
    by it, perception names its segments by it)."""
    return f"{check_object_class(label)}_{int(instance)}"


@dataclass(eq=False)
class CameraCloud:
    """What a depth camera driver publishes, optionally with a segmenting camera's per-point
    labels: ``points`` (N, 3) float32 m in ``frame_id`` (NaN where an organised cloud has no
    return), ``colors`` (N, 3) uint8 RGB, ``instance`` (N,) int32 object instance and
    ``label`` (N,) int32 index into ``vocabulary.OBJECT_CLASSES`` (:data:`NO_OBJECT` for neither).
    ``height`` x ``width`` is the organised layout (height 1: unorganised)."""

    points: np.ndarray
    colors: np.ndarray | None = None
    instance: np.ndarray | None = None
    label: np.ndarray | None = None
    frame_id: str = "base_link"
    stamp_ns: int = 0
    height: int = 1

    def __post_init__(self):
        pts = np.asarray(self.points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise PointCloudError(f"points must be (N, 3), got {pts.shape}")
        self.points = np.ascontiguousarray(pts, np.float32)
        n = len(self.points)
        if self.height < 1 or n % self.height:
            raise PointCloudError(f"{n} points do not fill {self.height} rows")
        if self.colors is not None:
            col = np.asarray(self.colors)
            if col.shape != (n, 3) or col.dtype != np.uint8:
                raise PointCloudError(f"colors must be uint8 ({n}, 3), got {col.dtype} {col.shape}")
            self.colors = np.ascontiguousarray(col)
        for name in ("instance", "label"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v)
                if v.shape != (n,) or not np.issubdtype(v.dtype, np.integer):
                    raise PointCloudError(f"{name} must be integer ({n},), got {v.dtype} {v.shape}")
                setattr(self, name, np.ascontiguousarray(v, np.int32))
        if self.label is not None and ((self.label >= len(OBJECT_CLASSES)) | (self.label < NO_OBJECT)).any():
            bad = sorted(set(self.label[(self.label >= len(OBJECT_CLASSES)) | (self.label < NO_OBJECT)].tolist()))[:5]
            raise PointCloudError(f"label values must index OBJECT_CLASSES (0..{len(OBJECT_CLASSES) - 1}) or be "
                                  f"{NO_OBJECT}; got {bad}")

    @property
    def width(self) -> int:
        return len(self.points) // self.height

    def __eq__(self, other) -> bool:
        return _fields_equal(self, other)

    __hash__ = None


# ---------------------------------------------------------------------------- scenes
@dataclass(frozen=True, eq=False)
class OrientedBox:
    """An oriented 3-D box: ``center`` (3,) m, ``orientation`` (4,) unit quaternion x, y, z, w
    (the box's own axes), ``size`` (3,) full edge lengths along them, m. float64."""

    center: np.ndarray
    orientation: np.ndarray
    size: np.ndarray

    def __post_init__(self):
        for name, n in (("center", 3), ("orientation", 4), ("size", 3)):
            v = np.asarray(getattr(self, name), np.float64).reshape(-1)
            if v.shape != (n,) or not np.isfinite(v).all():
                raise ValueError(f"box {name} must be {n} finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        if (self.size < 0).any():
            raise ValueError(f"box size must be >= 0, got {self.size}")
        if abs(float(np.linalg.norm(self.orientation)) - 1.0) > 1e-6:
            raise ValueError(f"box orientation must be a unit quaternion (x, y, z, w), got {self.orientation}")

    @staticmethod
    def around(points: np.ndarray, yaw: float = 0.0) -> "OrientedBox":
        """The box of ``points`` (P, 3) whose own axes are the frame's rotated by ``yaw`` about +z."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if len(pts) == 0:
            raise ValueError("cannot bound an empty point cloud")
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        local = pts @ rot                       # points in the box's axes
        lo, hi = local.min(0), local.max(0)
        return OrientedBox(rot @ (0.5 * (lo + hi)), np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]), hi - lo)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) (3,): the axis-aligned box around this one, in the same frame."""
        half = np.abs(quaternion_matrix(self.orientation)) @ (0.5 * self.size)
        return self.center - half, self.center + half

    def __eq__(self, other) -> bool:
        return _fields_equal(self, other)

    __hash__ = None


@dataclass(eq=False)
class SegmentedObject:
    """One segment O^i_t (paper 000 §3): an object's partial-view points in the scene frame.

    ``points`` (P, 3) float32 m; ``colors`` (P, 3) uint8 RGB or None; ``score`` the
    segmenter's confidence in [0, 1] (float32 precision); ``box`` defaults to the
    axis-aligned box of the points (none for an object with no points)."""

    id: str
    label: str
    points: np.ndarray
    score: float = 1.0
    box: OrientedBox | None = None
    colors: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"object id must be a non-empty str, got {self.id!r}")
        check_object_class(self.label)
        pts = np.asarray(self.points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"object {self.id!r}: points must be (P, 3), got {pts.shape}")
        pts = np.ascontiguousarray(pts, np.float32)
        if not np.isfinite(pts).all():
            raise ValueError(f"object {self.id!r}: points contain NaN or inf")
        self.points = pts
        if self.colors is not None:
            col = np.asarray(self.colors)
            if col.shape != pts.shape or col.dtype != np.uint8:
                raise ValueError(f"object {self.id!r}: colors must be uint8 {pts.shape}, got {col.dtype} {col.shape}")
            self.colors = np.ascontiguousarray(col)
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"object {self.id!r}: score must be in [0, 1], got {self.score!r}")
        self.score = float32_exact(self.score)
        if self.box is None and len(pts):
            self.box = OrientedBox.around(pts)

    def __eq__(self, other) -> bool:
        return _fields_equal(self, other)

    __hash__ = None


@dataclass(eq=False)
class SegmentedScene:
    """A segmented observation O_t = {O^0_t, ..., O^n_t} (paper 000 §3); ids unique."""

    objects: list[SegmentedObject]
    frame_id: str = "world"
    stamp_ns: int = 0
    source: str = ""

    def __post_init__(self):
        ids = [o.id for o in self.objects]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate object ids {dup}")
        if not isinstance(self.stamp_ns, (int, np.integer)) or self.stamp_ns < 0:
            raise ValueError(f"stamp_ns must be an int >= 0, got {self.stamp_ns!r}")

    def reordered(self, object_ids: Sequence[str]) -> "SegmentedScene":
        """The same scene with its objects in the order of ``object_ids`` (the same set of ids;
        ValueError otherwise): a backend that segments each frame afresh lists them in any order."""
        index = {o.id: o for o in self.objects}
        if sorted(index) != sorted(object_ids):
            raise ValueError(f"the scene holds {sorted(index)}, not {sorted(object_ids)}")
        return SegmentedScene([index[i] for i in object_ids], self.frame_id, self.stamp_ns, self.source)

    @property
    def object_ids(self) -> list[str]:
        return [o.id for o in self.objects]

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.objects]

    @property
    def clouds(self) -> list[np.ndarray]:
        return [o.points for o in self.objects]

    def __eq__(self, other) -> bool:
        return _fields_equal(self, other)

    __hash__ = None


# ---------------------------------------------------------------------------- relations
@dataclass(eq=False)
class RelationState:
    """A symbolic state R_t over ``object_ids`` (paper 000 §4): probabilities of every unary
    relation ``unary`` (N, 3) and binary relation ``binary`` (N, N, 9) [subject, object,
    predicate], vocabulary order, float32 in [0, 1] (0/1 for observed relations). NaN means
    unknown (a message that did not list the relation). The diagonal of ``binary`` is 0: no
    relation holds between an object and itself."""

    object_ids: list[str]
    unary: np.ndarray
    binary: np.ndarray
    frame_id: str = "world"
    stamp_ns: int = 0

    def __post_init__(self):
        n = len(self.object_ids)
        if len(set(self.object_ids)) != n:
            raise ValueError(f"duplicate object ids in {self.object_ids}")
        self.unary = np.asarray(self.unary, np.float32)
        self.binary = np.asarray(self.binary, np.float32)
        if self.unary.shape != (n, len(UNARY_RELATIONS)) or self.binary.shape != (n, n, len(BINARY_RELATIONS)):
            raise ValueError(f"relation arrays must be ({n}, {len(UNARY_RELATIONS)}) and "
                             f"({n}, {n}, {len(BINARY_RELATIONS)}), got {self.unary.shape} and {self.binary.shape}")
        for name, arr in (("unary", self.unary), ("binary", self.binary)):
            known = arr[~np.isnan(arr)]
            if ((known < 0) | (known > 1)).any():
                raise ValueError(f"{name} relation probabilities must be in [0, 1] (or NaN = unknown)")
        if n and np.any(self.binary[np.arange(n), np.arange(n)] != 0):
            raise ValueError("binary relations of an object with itself must be 0")

    @staticmethod
    def from_arrays(object_ids: Sequence[str], unary, binary, frame_id: str = "world",
                    stamp_ns: int = 0) -> "RelationState":
        """From probability or 0/1 (bool) arrays, e.g. ``f2p_relations.Relations`` or a plan step."""
        return RelationState(list(object_ids), np.asarray(unary, np.float32), np.asarray(binary, np.float32),
                             frame_id, stamp_ns)

    def reordered(self, object_ids: Sequence[str]) -> "RelationState":
        """The same state over ``object_ids`` in that order (the same set; ValueError otherwise)."""
        if sorted(self.object_ids) != sorted(object_ids):
            raise ValueError(f"the state ranges over {sorted(self.object_ids)}, not {sorted(object_ids)}")
        perm = [self.object_ids.index(i) for i in object_ids]
        return RelationState(list(object_ids), self.unary[perm], self.binary[np.ix_(perm, perm)], self.frame_id,
                             self.stamp_ns)

    def __eq__(self, other) -> bool:
        return _fields_equal(self, other)

    __hash__ = None


def check_literal(literal: GoalLiteral, n_objects: int) -> GoalLiteral:
    """``(predicate, subject, object|None)`` with indices < n_objects; ValueError otherwise."""
    pred, subj, obj = literal[0], literal[1], literal[2]
    unary = is_unary(pred)
    if unary != (obj is None):
        raise ValueError(f"literal {literal}: {pred!r} takes {'one object' if unary else 'two objects'}")
    for idx in (subj, obj):
        if idx is not None and not 0 <= int(idx) < n_objects:
            raise ValueError(f"literal {literal} names object {idx}; there are {n_objects}")
    return (pred, int(subj), None if obj is None else int(obj))


def ground_literal(predicate: str, subject_id: str, object_id: str, index: dict[str, int],
                   where: str = "relation") -> GoalLiteral:
    """(predicate, subject index, object index or None) of a relation named by object ids
    (``object_id`` "" for a unary predicate); ``index``: id -> index. ValueError saying what is
    wrong: an unknown predicate or id, a missing or extra object, an object related to itself."""
    try:
        unary = is_unary(predicate)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None

    def at(object_id: str) -> int:
        if object_id not in index:
            raise ValueError(f"{where}: unknown object id {object_id!r}; known: {sorted(index)}")
        return index[object_id]
    subj = at(subject_id)
    if unary:
        if object_id:
            raise ValueError(f"{where}: {predicate!r} is unary; object_id must be empty")
        return (predicate, subj, None)
    if not object_id:
        raise ValueError(f"{where}: {predicate!r} is binary; object_id is empty")
    obj = at(object_id)
    if obj == subj:
        raise ValueError(f"{where}: an object has no relation with itself")
    return (predicate, subj, obj)


# ---------------------------------------------------------------------------- skills and plans
@dataclass(frozen=True)
class SkillCall:
    """A parameterised skill φ(a) on objects named by id (paper 000 §3, A.10): what an
    executor or the simulated robot is asked to run."""

    skill: str
    target_ids: tuple[str, ...]
    parameters: tuple[float, ...]

    def __post_init__(self):
        spec = skill_spec(self.skill)
        object.__setattr__(self, "target_ids", tuple(self.target_ids))
        object.__setattr__(self, "parameters", tuple(float(p) for p in self.parameters))
        if len(self.target_ids) != spec.targets or not all(isinstance(t, str) and t for t in self.target_ids):
            raise ValueError(f"skill {self.skill!r} takes {spec.targets} target id(s), got {list(self.target_ids)}")
        spec.check(self.parameters)


@dataclass(eq=False)
class Plan:
    """A plan φ_{1:H}(a_{1:H}) with the relations predicted after each step (paper 000 §3-4).

    ``skeleton``: (skill, target index) per step; ``parameters``: each step's a_k in its skill's
    order; ``step_relations``: per step {"unary": (N, 3), "binary": (N, N, 9)} float32
    probabilities R'_k; ``goal``: the goal literals over object indices; ``goal_probability``:
    p(G) after the last step. ``object_ids`` name the indices (needed to send the plan);
    ``timing`` (seconds per stage, and the skeleton count) and ``evaluated_samples`` say what
    planning cost."""

    skeleton: list[tuple[str, int]]
    parameters: list[list[float]]
    step_relations: list[dict[str, np.ndarray]]
    goal_probability: float
    goal: list[GoalLiteral] = field(default_factory=list)
    object_ids: list[str] = field(default_factory=list)
    plan_id: str = ""
    model_version: str = ""
    frame_id: str = "world"
    stamp_ns: int = 0
    timing: dict[str, float] = field(default_factory=dict)
    evaluated_samples: int = 0

    def __eq__(self, other) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        rel = lambda p: [(r["unary"], r["binary"]) for r in p.step_relations]
        return (all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self)
                    if f.name != "step_relations")
                and len(self.step_relations) == len(other.step_relations)
                and all(arrays_identical(a, c) and arrays_identical(b, d)
                        for (a, b), (c, d) in zip(rel(self), rel(other))))

    __hash__ = None


@dataclass
class StepProgress:
    """Where the task executor is (``f2p_interfaces/TaskProgress``): ``stage`` (its stage name:
    observe, plan, ..., execute, verify_step, done), the plan and step it is at, the task
    (``goal_id``), and what it says (``message``); at done, whether the task ``success``-ed and
    the ``model_version`` its last plan came from."""

    stage: str
    plan_id: str = ""
    step_index: int = 0
    goal_id: str = ""
    message: str = ""
    success: bool = False
    model_version: str = ""


# ---------------------------------------------------------------------------- models
@dataclass
class ModelInfo:
    """Identity of a skill-effect checkpoint: ``version`` and ``parent_version`` (empty for a
    pre-trained model), the file's ``sha256`` and ``signature`` (hex, empty if unsigned), where
    it is (``uri``), when it was written (``created_ns``) and its evaluation ``metrics``."""

    name: str
    version: str
    parent_version: str = ""
    sha256: str = ""
    signature: str = ""
    uri: str = ""
    created_ns: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- pictures
#: Kinds of :class:`Shape`, and what its ``scale`` means for each (as visualization_msgs/Marker).
SHAPE_KINDS = {"box": "edge lengths (m)", "lines": "(line width, -, -) m; points taken in pairs",
               "arrow": "(shaft diameter, head diameter, head length) m; from points[0] to points[1]",
               "text": "(-, -, text height) m"}


@dataclass(eq=False)
class Shape:
    """One thing to draw (a visualization_msgs/Marker): ``kind`` one of :data:`SHAPE_KINDS`,
    identified by ``namespace`` and ``index``; ``color`` RGBA in [0, 1]; ``center`` (3,) m and
    ``orientation`` (4,) x, y, z, w of a box or a text; ``points`` (P, 3) m of lines and arrows;
    ``scale`` (3,) as :data:`SHAPE_KINDS` says. In ``frame_id``."""

    kind: str
    namespace: str
    index: int
    color: tuple[float, float, float, float]
    scale: tuple[float, float, float]
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    orientation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    text: str = ""
    frame_id: str = "world"

    def __post_init__(self):
        if self.kind not in SHAPE_KINDS:
            raise ValueError(f"shape kind {self.kind!r} is not one of {sorted(SHAPE_KINDS)}")
        self.center = np.asarray(self.center, np.float64).reshape(3)
        self.orientation = np.asarray(self.orientation, np.float64).reshape(4)
        self.points = np.asarray(self.points, np.float64).reshape(-1, 3)
        if len(self.color) != 4 or not all(0.0 <= c <= 1.0 for c in self.color):
            raise ValueError(f"shape color must be RGBA in [0, 1], got {self.color}")
        self.color = tuple(float32_exact(c) for c in self.color)      # the message's float32
        self.scale = tuple(float(v) for v in self.scale)
        if not (np.isfinite(self.center).all() and np.isfinite(self.points).all() and np.isfinite(self.scale).all()):
            raise ValueError(f"shape {self.namespace}/{self.index}: coordinates must be finite")
        need = {"lines": lambda n: n % 2 == 0, "arrow": lambda n: n == 2}.get(self.kind, lambda n: True)
        if not need(len(self.points)):
            raise ValueError(f"shape {self.namespace}/{self.index}: {self.kind} cannot take {len(self.points)} points")

    def __eq__(self, other) -> bool:
        return _fields_equal(self, other)

    __hash__ = None
