"""The one definition of f2p's symbolic relations (paper 000 A.9), computed from boxes.

Every consumer — the simulator's ground-truth labeller (from exact simulator state), the
geometric relation detector (from bounding boxes of segmented point clouds), Real2Sim
checks and the tests — calls :func:`compute_relations`. Predicate names and order come from
``f2p_common.vocabulary``, like the object classes, and are never redefined here.

Frames and conventions
----------------------
World frame, metres, z up. The robot and its default camera stand at negative x looking
towards +x, so from the robot's point of view:

* ``front``  = closer to the robot  = smaller x,
* ``behind`` = farther from the robot = larger x,
* ``left``   = +y, ``right`` = -y,
* ``above``  = +z, ``below`` = -z.

Every relation is defined on world *axis-aligned* bounding boxes (AABBs). Oriented boxes
(center, size, yaw) are converted by :meth:`Boxes.from_center_size_yaw`; point-cloud
segments by :func:`boxes_from_clouds`. Binary relations read "subject <predicate> object":
``binary[i, j, k]`` is true when ``RELATIONS_BINARY[k](i, j)`` holds. The diagonal is false.

Definitions (thresholds are the module constants below)
--------------------------------------------------------
movable(A)       A's semantic class is in :data:`MOVABLE_CLASSES` (a table is not movable).
is_drawer(A)     A's semantic class is in :data:`DRAWER_CLASSES`.
drawer_open(A)   is_drawer(A) and its opening exceeds :data:`DRAWER_OPEN_MIN`. The opening
                 is the drawer joint position when the simulator provides it, else (clouds)
                 how far the drawer's front face sticks out of its cabinet's front face.
left(A, B)       A lies wholly on B's +y side: A.ymin >= B.ymax - SPATIAL_OVERLAP_TOL.
right(A, B)      A.ymax <= B.ymin + SPATIAL_OVERLAP_TOL.
front(A, B)      A.xmax <= B.xmin + SPATIAL_OVERLAP_TOL.
behind(A, B)     A.xmin >= B.xmax - SPATIAL_OVERLAP_TOL.
above(A, B)      A.zmin >= B.zmax - VERTICAL_OVERLAP_TOL and the xy footprints overlap by
                 more than FOOTPRINT_OVERLAP_MIN in both x and y.
below(A, B)      above(B, A).
in_contact(A,B)  simulator: a contact between a geom of A and a geom of B with distance
                 <= CONTACT_DISTANCE (paper: "obtained directly from the simulator");
                 boxes/clouds: the AABB gap (largest per-axis separation) <= BOX_CONTACT_GAP.
boundary(A, B)   above(A, B), both xy dimensions of B exceed EPS_BOTTOM (0.2 m) and the
                 distance from A's footprint to the nearest edge of B's footprint is below
                 EPS_BOUNDARY (0.1 m) (paper A.9: ε_boundary = 0.1 m, ε_bottom = 0.2 m).
inside(A, B)     A's box is contained in B's box, each face within INSIDE_TOL (paper A.9:
                 "the bounding box of A is completely contained within the bounding box
                 of B"); A's box must also be smaller than B's in volume, so two identical
                 boxes are not inside each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from f2p_common.vocabulary import (BINARY_RELATIONS, DRAWER_CLASSES, MOVABLE_CLASSES, OBJECT_CLASSES, RELATIONS,
                                   UNARY_RELATIONS)

#: Paper A.9: boundary(A, B) needs A's distance to B's nearest edge below this (m).
EPS_BOUNDARY = 0.1
#: Paper A.9: boundary(A, B) needs B's dimensions to exceed this (m) — B is a real surface.
EPS_BOTTOM = 0.2
#: A drawer counts as open when pulled out by more than this (m). Chosen so that sensor
#: noise on a closed drawer's front panel (a few mm) never reads as open.
DRAWER_OPEN_MIN = 0.03
#: left/right/front/behind tolerate this much box overlap (m): touching boxes, and boxes
#: shrunk or grown by a few mm of cloud noise, still read as beside each other.
SPATIAL_OVERLAP_TOL = 0.01
#: above/below tolerate this much vertical overlap (m): an object resting on a surface has
#: zmin == surface zmax up to solver penetration (~1 mm) and cloud noise.
VERTICAL_OVERLAP_TOL = 0.015
#: above/below need footprints to overlap by at least this (m) on both x and y.
FOOTPRINT_OVERLAP_MIN = 0.005
#: Simulator contacts count when the signed distance is at most this (m).
CONTACT_DISTANCE = 0.002
#: Box-based in_contact: boxes closer than this (m) on their most separated axis. Larger
#: than CONTACT_DISTANCE because cloud boxes miss hidden faces and carry sensor noise.
BOX_CONTACT_GAP = 0.01
#: inside(A, B): each face of A may stick out of B by at most this (m) — an item flush with
#: a cup's rim, or a few mm of noise, is still inside.
INSIDE_TOL = 0.01


@dataclass(frozen=True)
class Boxes:
    """N world axis-aligned boxes: ``lower`` and ``upper`` corners, shape (N, 3)."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        lower = np.asarray(self.lower, dtype=np.float64).reshape(-1, 3)
        upper = np.asarray(self.upper, dtype=np.float64).reshape(-1, 3)
        if lower.shape != upper.shape:
            raise ValueError(f"box corners disagree in shape: {lower.shape} vs {upper.shape}")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise ValueError("box corners must be finite (got NaN or inf)")
        if np.any(upper < lower):
            raise ValueError("box upper corner below lower corner")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def __len__(self) -> int:
        return self.lower.shape[0]

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.lower + self.upper)

    @property
    def size(self) -> np.ndarray:
        return self.upper - self.lower

    @classmethod
    def from_center_size_yaw(cls, center, size, yaw=None) -> "Boxes":
        """AABBs of boxes given by center (N,3), full size (N,3) and yaw about +z (N,)."""
        center = np.asarray(center, dtype=np.float64).reshape(-1, 3)
        size = np.asarray(size, dtype=np.float64).reshape(-1, 3)
        if np.any(size < 0):
            raise ValueError("box sizes must be non-negative")
        half = 0.5 * size
        if yaw is not None:
            yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
            c, s = np.abs(np.cos(yaw)), np.abs(np.sin(yaw))
            # The AABB of a box rotated about z: |R| applied to the half extents.
            half = np.stack([c * half[:, 0] + s * half[:, 1], s * half[:, 0] + c * half[:, 1], half[:, 2]], axis=1)
        return cls(center - half, center + half)


def boxes_from_clouds(points: Sequence[np.ndarray], trim: float = 0.0) -> Boxes:
    """AABBs of per-segment point clouds (the geometric detector's boxes).

    ``points`` is a sequence of (P_i, 3) arrays, one per segment (or an (S, P, 3) array).
    ``trim``: the fraction of each segment's points left out at each end of each axis (the
    box spans the ``trim`` to ``1 - trim`` quantiles): a depth sensor's outliers (a flying
    pixel, a noise tail) must not lift a bin off its table. 0: the exact extremes.
    Raises ValueError for an empty segment or non-finite points: a segment the camera did
    not see has no box, and silently inventing one would corrupt every relation about it.
    """
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    lower, upper = [], []
    for i, cloud in enumerate(points):
        cloud = np.asarray(cloud, dtype=np.float64).reshape(-1, 3)
        if cloud.shape[0] == 0:
            raise ValueError(f"segment {i} has no points; cannot bound it")
        if not np.all(np.isfinite(cloud)):
            raise ValueError(f"segment {i} has non-finite points")
        if trim > 0.0:
            lower.append(np.quantile(cloud, trim, axis=0))
            upper.append(np.quantile(cloud, 1.0 - trim, axis=0))
        else:
            lower.append(cloud.min(axis=0))
            upper.append(cloud.max(axis=0))
    return Boxes(np.array(lower).reshape(-1, 3), np.array(upper).reshape(-1, 3))


@dataclass
class Relations:
    """Dense relation state: ``unary`` (N, 3) and ``binary`` (N, N, 9), vocabulary order."""

    unary: np.ndarray
    binary: np.ndarray
    names: tuple[str, ...] = ()

    def holds(self, predicate: str, subject: int, obj: int | None = None) -> bool:
        """Truth of one literal, e.g. ``holds("inside", 2, 1)`` or ``holds("movable", 2)``."""
        if predicate in UNARY_RELATIONS:
            if obj is not None:
                raise ValueError(f"{predicate!r} is unary; got two arguments")
            return bool(self.unary[subject, UNARY_RELATIONS.index(predicate)])
        if predicate in BINARY_RELATIONS:
            if obj is None:
                raise ValueError(f"{predicate!r} is binary; needs an object")
            return bool(self.binary[subject, obj, BINARY_RELATIONS.index(predicate)])
        raise ValueError(f"unknown relation predicate {predicate!r}; known: {', '.join(RELATIONS)}")

    def literals(self) -> set[tuple]:
        """All true literals as tuples: ``(pred, i)`` for unary, ``(pred, i, j)`` for binary."""
        out: set[tuple] = set()
        for i, k in zip(*np.nonzero(self.unary)):
            out.add((UNARY_RELATIONS[k], int(i)))
        for i, j, k in zip(*np.nonzero(self.binary)):
            out.add((BINARY_RELATIONS[k], int(i), int(j)))
        return out

    def flat(self) -> np.ndarray:
        """Unary then binary flattened to one uint8 vector (the dataset's R_t layout)."""
        return np.concatenate([self.unary.reshape(-1), self.binary.reshape(-1)]).astype(np.uint8)


def drawer_openings_from_boxes(boxes: Boxes, classes: Sequence[str]) -> np.ndarray:
    """Opening (m) of each drawer from boxes: protrusion of its front (-x) face past its cabinet's.

    The cabinet of a drawer is the cabinet box that contains the drawer's y-z center. NaN for
    non-drawers and for drawers without a cabinet (their open state is then unknown -> False).
    """
    openings = np.full(len(boxes), np.nan)
    cabinets = [i for i, c in enumerate(classes) if c == "cabinet"]
    center = boxes.center
    for i, cls in enumerate(classes):
        if cls not in DRAWER_CLASSES:
            continue
        for c in cabinets:
            if (boxes.lower[c, 1] <= center[i, 1] <= boxes.upper[c, 1]
                    and boxes.lower[c, 2] <= center[i, 2] <= boxes.upper[c, 2]):
                openings[i] = max(0.0, boxes.lower[c, 0] - boxes.lower[i, 0])
                break
    return openings


def contact_matrix_from_pairs(n: int, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """Symmetric (n, n) bool matrix from segment index pairs (self-pairs ignored)."""
    m = np.zeros((n, n), dtype=bool)
    for a, b in pairs:
        if a != b and 0 <= a < n and 0 <= b < n:
            m[a, b] = m[b, a] = True
    return m


def compute_relations(
    boxes: Boxes,
    classes: Sequence[str],
    contacts: np.ndarray | Iterable[tuple[int, int]] | None = None,
    drawer_openings: Mapping[int, float] | np.ndarray | None = None,
    names: Sequence[str] = (),
) -> Relations:
    """All relations of paper 000 A.9 over N segments (see the module docstring).

    boxes            world AABBs of the N segments.
    classes          semantic class per segment (from :data:`OBJECT_CLASSES`).
    contacts         simulator contacts as an (N, N) bool matrix or index pairs; None means
                     "no simulator": in_contact then comes from box gaps (BOX_CONTACT_GAP).
    drawer_openings  opening (m) per drawer segment (array of N with NaN elsewhere, or a
                     {index: opening} mapping); None means estimate from boxes.
    """
    n = len(boxes)
    classes = list(classes)
    if len(classes) != n:
        raise ValueError(f"{n} boxes but {len(classes)} classes")
    unknown = sorted({c for c in classes if c not in OBJECT_CLASSES})
    if unknown:
        raise ValueError(f"unknown object classes {unknown}; known: {', '.join(OBJECT_CLASSES)}")
    lo, hi = boxes.lower, boxes.upper

    unary = np.zeros((n, len(UNARY_RELATIONS)), dtype=bool)
    unary[:, 0] = [c in MOVABLE_CLASSES for c in classes]
    unary[:, 1] = [c in DRAWER_CLASSES for c in classes]
    if drawer_openings is None:
        openings = drawer_openings_from_boxes(boxes, classes)
    elif isinstance(drawer_openings, Mapping):
        openings = np.full(n, np.nan)
        for i, v in drawer_openings.items():
            openings[int(i)] = float(v)
    else:
        openings = np.asarray(drawer_openings, dtype=np.float64).reshape(n)
    with np.errstate(invalid="ignore"):
        unary[:, 2] = unary[:, 1] & (np.nan_to_num(openings, nan=0.0) > DRAWER_OPEN_MIN)

    # Pairwise arrays are indexed [subject i, object j].
    lo_i, hi_i = lo[:, None, :], hi[:, None, :]
    lo_j, hi_j = lo[None, :, :], hi[None, :, :]
    binary = np.zeros((n, n, len(BINARY_RELATIONS)), dtype=bool)
    k = BINARY_RELATIONS.index
    binary[..., k("left")] = lo_i[..., 1] >= hi_j[..., 1] - SPATIAL_OVERLAP_TOL
    binary[..., k("right")] = hi_i[..., 1] <= lo_j[..., 1] + SPATIAL_OVERLAP_TOL
    binary[..., k("front")] = hi_i[..., 0] <= lo_j[..., 0] + SPATIAL_OVERLAP_TOL
    binary[..., k("behind")] = lo_i[..., 0] >= hi_j[..., 0] - SPATIAL_OVERLAP_TOL
    overlap_xy = np.minimum(hi_i[..., :2], hi_j[..., :2]) - np.maximum(lo_i[..., :2], lo_j[..., :2])
    footprints_overlap = np.all(overlap_xy > FOOTPRINT_OVERLAP_MIN, axis=-1)
    above = footprints_overlap & (lo_i[..., 2] >= hi_j[..., 2] - VERTICAL_OVERLAP_TOL)
    binary[..., k("above")] = above
    binary[..., k("below")] = above.T

    if contacts is None:
        gap = np.max(np.maximum(lo_i - hi_j, lo_j - hi_i), axis=-1)
        binary[..., k("in_contact")] = gap <= BOX_CONTACT_GAP
    else:
        cm = contacts if isinstance(contacts, np.ndarray) else contact_matrix_from_pairs(n, contacts)
        cm = np.asarray(cm, dtype=bool)
        if cm.shape != (n, n):
            raise ValueError(f"contact matrix must be ({n}, {n}), got {cm.shape}")
        binary[..., k("in_contact")] = cm | cm.T

    size_j = hi_j - lo_j
    big_surface = np.all(size_j[..., :2] > EPS_BOTTOM, axis=-1)
    # Distance from A's footprint to B's nearest footprint edge (negative if A overhangs).
    edge_dist = np.min(np.concatenate([hi_j[..., :2] - hi_i[..., :2], lo_i[..., :2] - lo_j[..., :2]], axis=-1), axis=-1)
    binary[..., k("boundary")] = above & big_surface & (edge_dist < EPS_BOUNDARY)

    contained = np.all((lo_i >= lo_j - INSIDE_TOL) & (hi_i <= hi_j + INSIDE_TOL), axis=-1)
    volume = np.prod(hi - lo, axis=-1)
    binary[..., k("inside")] = contained & (volume[:, None] < volume[None, :])

    idx = np.arange(n)
    binary[idx, idx, :] = False
    return Relations(unary=unary, binary=binary, names=tuple(names))


def relation_names(segment_names: Sequence[str], relations: Relations) -> list[str]:
    """Human-readable true literals, e.g. ``inside(apple, bin)``; sorted for stable output."""
    out = []
    for lit in relations.literals():
        args = ", ".join(segment_names[i] for i in lit[1:])
        out.append(f"{lit[0]}({args})")
    return sorted(out)
