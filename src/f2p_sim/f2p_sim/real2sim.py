"""Real2Sim (paper 000 §5.3, A.12): a simulator scene from a segmented point cloud.

Given per-segment clouds and semantic labels, each segment gets the shape prior of its
class (cuboid, open box, shelf, cabinet+drawer, table; ``scene.object_geoms``), sized by the
segment's bounding box, with the class's pre-defined physical parameters from the world
config (§5.3). Segment-wise pose offsets ξ(s) (§5.1: "the segment-wise transformation of
the point cloud to the poses defined by the state vector s") are applied to the clouds
first, so the learner can turn each SVGD particle into a scene.

Because the views are partial, boxes are completed with two priors that a bounding box
alone cannot give:

* furniture (table, shelf, cabinet) stands on the floor: its box is extended down to z = 0;
* a movable object rests on what is below it: its box is extended down to the support
  under its center — the inner floor of a container whose footprint holds it, else the top
  of the highest box below it, else the floor. This recovers the hidden lower part of an
  item seen over a bin's wall.

* boxes from samples are a little smaller than the object (the last ray that hits is up to
  one ray spacing inside the edge) and noise makes them a little larger, so two movable
  boxes side by side closer or overlapping by less than
  ``f2p_relations.relations.BOX_CONTACT_GAP`` — which the geometric detector calls in
  contact — are made to meet in the middle, and touch in the simulator.

A drawer segment does not become an object of its own: its cabinet (the cabinet box that
holds the drawer's y-z center) is built with its sliding drawer, pulled out by the drawer's
protrusion past the cabinet front (``f2p_relations.relations.drawer_openings_from_boxes``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from f2p_common.vocabulary import MOVABLE_CLASSES, OBJECT_CLASSES
from f2p_relations.relations import BOX_CONTACT_GAP, boxes_from_clouds, drawer_openings_from_boxes
from f2p_sim.scene import ObjectSpec, SceneError, SceneSpec, drawer_layout

#: Movable boxes are lifted this much (m) above their completed support to avoid an
#: initial interpenetration from rounding.
SUPPORT_GAP = 0.001
#: Smallest object size (m) Real2Sim builds; thinner boxes (a single visible face) are padded.
MIN_SIZE = 0.01
#: A support must be at most this far (m) above the object's lowest visible point.
SUPPORT_TOL = 0.02
FURNITURE_CLASSES = frozenset({"table", "shelf", "cabinet"})


@dataclass
class Real2SimResult:
    """The scene, and for each input segment its row in ``scene.segments()``."""

    scene: SceneSpec
    segment_map: list[int]


def apply_segment_offsets(clouds: Sequence[np.ndarray], offsets: np.ndarray | None) -> list[np.ndarray]:
    """ξ(s)O: move each segment's cloud by (dx, dy, dz, dyaw) — yaw about the segment centroid.

    ``offsets`` is (S, 3) translations or (S, 4) translations + yaw (rad); None = identity.
    """
    clouds = [np.asarray(c, dtype=np.float64).reshape(-1, 3) for c in clouds]
    if offsets is None:
        return clouds
    off = np.asarray(offsets, dtype=np.float64)
    if off.ndim != 2 or off.shape[0] != len(clouds) or off.shape[1] not in (3, 4):
        raise ValueError(f"offsets must be ({len(clouds)}, 3) or ({len(clouds)}, 4), got {off.shape}")
    if not np.all(np.isfinite(off)):
        raise ValueError("offsets must be finite")
    out = []
    for c, o in zip(clouds, off):
        if c.shape[0] and off.shape[1] == 4 and o[3] != 0.0:
            center = c.mean(axis=0)
            cs, sn = np.cos(o[3]), np.sin(o[3])
            rel = c - center
            c = center + np.stack([cs * rel[:, 0] - sn * rel[:, 1], sn * rel[:, 0] + cs * rel[:, 1], rel[:, 2]], axis=1)
        out.append(c + o[:3])
    return out


def _close_small_gaps(lo: np.ndarray, hi: np.ndarray, movable: list[int]) -> None:
    """Make side-by-side movable boxes within BOX_CONTACT_GAP of each other meet exactly.

    Small gaps (sampling shrinks boxes) and small overlaps (noise grows them) are both
    below what the geometric detector resolves; the boxes meet in the middle, so the
    simulator sees touching objects — as the detector's in_contact says."""
    for a in movable:
        for b in movable:
            if a >= b or min(hi[a, 2], hi[b, 2]) - max(lo[a, 2], lo[b, 2]) <= 0:
                continue
            sep = np.maximum(lo[b, :2] - hi[a, :2], lo[a, :2] - hi[b, :2])  # < 0: overlap depth
            ax = int(np.argmax(sep))
            if sep[1 - ax] >= 0 or not -BOX_CONTACT_GAP < sep[ax] <= BOX_CONTACT_GAP:
                continue
            first, second = (a, b) if lo[a, ax] + hi[a, ax] < lo[b, ax] + hi[b, ax] else (b, a)
            middle = 0.5 * (hi[first, ax] + lo[second, ax])
            hi[first, ax] = middle
            lo[second, ax] = middle


def scene_from_segments(clouds: Sequence[np.ndarray], labels: Sequence[str], cfg: dict,
                        offsets: np.ndarray | None = None, names: Sequence[str] | None = None) -> Real2SimResult:
    """Build a validated SceneSpec from segmented clouds and labels (see module docstring).

    Raises SceneError for unknown labels, empty or non-finite segments, a drawer without a
    cabinet, or a result that fails scene validation (e.g. overlapping boxes).
    """
    labels = list(labels)
    if len(clouds) != len(labels):
        raise SceneError(f"{len(clouds)} segments but {len(labels)} labels")
    unknown = sorted({l for l in labels if l not in OBJECT_CLASSES})
    if unknown:
        raise SceneError(f"unknown segment labels {unknown}; known: {', '.join(OBJECT_CLASSES)}")
    names = list(names) if names is not None else [f"{l}_{i}" for i, l in enumerate(labels)]
    try:
        moved = apply_segment_offsets(clouds, offsets)
        boxes = boxes_from_clouds(moved)
    except ValueError as e:
        raise SceneError(f"bad segment clouds: {e}") from None
    lo, hi = boxes.lower.copy(), boxes.upper.copy()
    openings = drawer_openings_from_boxes(boxes, labels)
    cabinet_opening: dict[int, float] = {}
    drawer_of: dict[int, int] = {}
    for i, l in enumerate(labels):
        if l != "drawer":
            continue
        if np.isnan(openings[i]):
            raise SceneError(f"drawer segment {names[i]!r} has no cabinet segment around it")
        cab = next(c for c, lc in enumerate(labels) if lc == "cabinet"
                   and lo[c, 1] <= boxes.center[i, 1] <= hi[c, 1] and lo[c, 2] <= boxes.center[i, 2] <= hi[c, 2])
        cabinet_opening[cab] = float(openings[i])
        drawer_of[i] = cab

    for i, l in enumerate(labels):
        if l in FURNITURE_CLASSES:
            lo[i, 2] = 0.0  # stands on the floor
    # Complete movable boxes downwards, lowest first so a container is done before its contents.
    movable = [i for i, l in enumerate(labels) if l in MOVABLE_CLASSES]
    for i in sorted(movable, key=lambda k: lo[k, 2]):
        cxy = 0.5 * (lo[i, :2] + hi[i, :2])
        support = 0.0
        for j, lj in enumerate(labels):
            if j == i or lj == "drawer" and j not in drawer_of:
                continue
            if not (lo[j, 0] <= cxy[0] <= hi[j, 0] and lo[j, 1] <= cxy[1] <= hi[j, 1]):
                continue
            ccfg = cfg["classes"][lj]
            if ccfg["shape"] in ("open_box", "drawer"):
                top = lo[j, 2] + float(ccfg["wall_thickness"])  # inner floor
                if hi[j, 2] <= lo[i, 2] + SUPPORT_TOL:
                    top = hi[j, 2]  # on top of the container, not in it
            elif ccfg["shape"] == "shelf":
                wh = min(float(ccfg["wall_height"]), hi[j, 2] - 0.05)
                top = hi[j, 2] - wh
                if hi[j, 2] <= lo[i, 2] + SUPPORT_TOL:
                    top = hi[j, 2]
            else:
                top = hi[j, 2]
            if top <= lo[i, 2] + SUPPORT_TOL:
                support = max(support, top)
        lo[i, 2] = support + SUPPORT_GAP  # resting on it (snaps noisy bottoms up, hidden ones down)
        if hi[i, 2] - lo[i, 2] < MIN_SIZE:
            hi[i, 2] = lo[i, 2] + MIN_SIZE

    _close_small_gaps(lo, hi, movable)

    objects, segment_map = [], [-1] * len(labels)
    row = 0
    for i, l in enumerate(labels):
        if l == "drawer":
            continue
        size = np.maximum(hi[i] - lo[i], MIN_SIZE)
        center = 0.5 * (lo[i] + hi[i])
        center[2] = lo[i, 2] + size[2] / 2
        obj = ObjectSpec(name=names[i], cls=l, size=tuple(float(v) for v in size), pos=tuple(float(v) for v in center))
        if l == "cabinet":
            _, _, max_open = drawer_layout(obj, cfg)
            obj.drawer_opening = float(np.clip(cabinet_opening.get(i, 0.0), 0.0, max_open))
        objects.append(obj)
        segment_map[i] = row
        row += 1
        if l == "cabinet":
            for d, c in drawer_of.items():
                if c == i:
                    segment_map[d] = row
            row += 1
    scene = SceneSpec(objects)
    scene.validate(cfg)
    return Real2SimResult(scene=scene, segment_map=segment_map)
