"""The robot's own body out of the camera's points, before segmentation: a camera that sees the
arm would otherwise report its links as objects or a table (what ``robot_body_filter`` or
MoveIt's self filter do on a ROS desktop, from the URDF's shapes).

The body is a chain of capsules: one around the segment between each two consecutive frames'
origins of a kinematic chain (e.g. a UR's ``base_link``, ``shoulder_link``, ``forearm_link``,
``wrist_1_link``, ... ``tool0``, ``tcp``), each with its radius. Points inside are set to NaN, the
way a depth camera marks a missing return, so an organised cloud keeps its pixel layout.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from f2p_common.interfaces import CameraCloud


@dataclass(frozen=True)
class Capsule:
    """The points within ``radius`` of the segment ``start``-``end`` (m, one frame)."""

    start: np.ndarray
    end: np.ndarray
    radius: float


def chain_capsules(origins: Sequence[np.ndarray], radii: Sequence[float]) -> list[Capsule]:
    """A capsule between each two consecutive ``origins`` (one origin: a sphere around it);
    ``radii``: one for all, or one per capsule. ValueError for a count that does not fit."""
    origins = [np.asarray(o, np.float64).reshape(3) for o in origins]
    count = max(1, len(origins) - 1)
    radii = list(radii)
    if not origins or len(radii) not in (1, count) or min(radii) <= 0:
        raise ValueError(f"{len(origins)} frames make {count} capsule(s): give one positive radius or {count}, "
                         f"got {radii}")
    radii = radii * count if len(radii) == 1 else radii
    if len(origins) == 1:
        return [Capsule(origins[0], origins[0], float(radii[0]))]
    return [Capsule(a, b, float(r)) for a, b, r in zip(origins[:-1], origins[1:], radii)]


def inside(points: np.ndarray, capsules: Sequence[Capsule]) -> np.ndarray:
    """(N,) True for the points (N, 3) inside any capsule (NaN points are inside none)."""
    p = np.asarray(points, np.float64)
    hit = np.zeros(len(p), bool)
    for c in capsules:
        axis = c.end - c.start
        length2 = float(axis @ axis)
        t = np.zeros(len(p)) if length2 == 0.0 else np.clip((p - c.start) @ axis / length2, 0.0, 1.0)
        nearest = c.start + t[:, None] * axis
        with np.errstate(invalid="ignore"):
            hit |= np.sum((p - nearest) ** 2, axis=1) <= c.radius ** 2
    return hit


def remove_robot(cloud: CameraCloud, capsules: Sequence[Capsule]) -> tuple[CameraCloud, int]:
    """``cloud`` (in the capsules' frame) with the points inside them set to NaN, and how many."""
    hit = inside(cloud.points, capsules)
    count = int(hit.sum())
    if not count:
        return cloud, 0
    points = cloud.points.copy()
    points[hit] = np.nan
    return replace(cloud, points=points), count
