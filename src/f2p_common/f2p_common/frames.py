"""Coordinate frames without ROS: poses as (x, y, z, qx, qy, qz, qw) arrays and a transform
buffer with tf2's semantics, for where ``tf2_ros`` is not installed (the PyPI ROS wheels).

A robot's ROS install has ``tf2_ros``; ``f2p_ros.tf`` uses it there and this buffer elsewhere,
fed from the same ``/tf`` and ``/tf_static`` topics. What it keeps of tf2 (REP-105 trees):

* every frame has at most one parent; a transform ``parent -> child`` is the child frame's pose
  in its parent;
* static transforms hold at all times; dynamic ones are kept for ``cache_s`` seconds and
  interpolated between the two samples around the asked time (position linearly, rotation by
  slerp); asking outside their span is an :class:`ExtrapolationError`, as in tf2;
* ``stamp_ns == 0`` asks for the latest time at which the whole chain is known (tf2's
  ``Time(0)``);
* a lookup composes the chain up from both frames to their common ancestor.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

import numpy as np

#: The identity pose.
IDENTITY = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


class TransformError(LookupError):
    """A transform that cannot be looked up (the message says which frames and why)."""


class UnknownFrameError(TransformError):
    """A frame no transform names."""


class ConnectivityError(TransformError):
    """Two frames in different trees."""


class ExtrapolationError(TransformError):
    """A time outside what the buffer holds for a transform of the chain."""


def check_pose(pose) -> np.ndarray:
    """``pose`` as a float array (x, y, z, qx, qy, qz, qw); ValueError unless finite with a unit
    quaternion (within 1e-3: messages carry float64 of float32 origins)."""
    p = np.asarray(pose, np.float64).reshape(-1)
    if p.shape != (7,) or not np.isfinite(p).all() or abs(np.linalg.norm(p[3:]) - 1.0) > 1e-3:
        raise ValueError(f"a pose is (x, y, z, qx, qy, qz, qw) with a unit quaternion, got {list(p)}")
    return np.concatenate([p[:3], p[3:] / np.linalg.norm(p[3:])])


def quaternion_matrix(q) -> np.ndarray:
    """The rotation matrix of the unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def quat_multiply(a, b) -> np.ndarray:
    """The Hamilton product a * b of quaternions (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def quat_rotate(q, v) -> np.ndarray:
    """Vectors ``v`` (..., 3) rotated by the unit quaternion ``q`` (x, y, z, w)."""
    u, w = np.asarray(q[:3], np.float64), float(q[3])
    v = np.asarray(v, np.float64)
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def compose(a, b) -> np.ndarray:
    """The pose ``b`` given in frame A, expressed where ``a`` (A's pose) is given: a * b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.concatenate([a[:3] + quat_rotate(a[3:], b[:3]), quat_multiply(a[3:], b[3:])])


def invert(a) -> np.ndarray:
    """The inverse pose: invert(a) * a is the identity."""
    a = np.asarray(a, np.float64)
    q = np.array([-a[3], -a[4], -a[5], a[6]])
    return np.concatenate([-quat_rotate(q, a[:3]), q])


def interpolate(a, b, t: float) -> np.ndarray:
    """The pose a fraction ``t`` of the way from ``a`` to ``b`` (lerp and slerp)."""
    qa, qb = np.asarray(a[3:], np.float64), np.asarray(b[3:], np.float64)
    dot = float(qa @ qb)
    if dot < 0.0:                                       # the short way round
        qb, dot = -qb, -dot
    if dot > 0.9995:
        q = qa + t * (qb - qa)
    else:
        theta = np.arccos(min(dot, 1.0))
        q = (np.sin((1 - t) * theta) * qa + np.sin(t * theta) * qb) / np.sin(theta)
    pos = (1 - t) * np.asarray(a[:3], np.float64) + t * np.asarray(b[:3], np.float64)
    return np.concatenate([pos, q / np.linalg.norm(q)])


@dataclass
class _Link:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)          # sorted
    poses: list[np.ndarray] = field(default_factory=list)


class TransformBuffer:
    """Transforms between frames over time (module docstring). Thread-safe: a subscription
    callback sets while a worker looks up."""

    def __init__(self, cache_s: float = 10.0):
        if not cache_s > 0:
            raise ValueError("cache_s must be > 0")
        self.cache_ns = int(cache_s * 1e9)
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()

    def set_transform(self, parent: str, child: str, pose, stamp_ns: int, static: bool = False) -> None:
        """Record ``child``'s pose in ``parent`` at ``stamp_ns``. ValueError for an empty or equal
        frame id or a bad pose; a child that changes parent starts a new history (as tf2)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise ValueError(f"a transform needs two different, non-empty frames, got {parent!r} -> {child!r}")
        pose = check_pose(pose)
        with self._lock:
            link = self._links.get(child)
            if link is None or link.parent != parent or link.static != static:
                link = self._links[child] = _Link(parent, static)
            if static:
                link.stamps, link.poses = [0], [pose]
                return
            i = bisect.bisect_left(link.stamps, stamp_ns)
            if i < len(link.stamps) and link.stamps[i] == stamp_ns:
                link.poses[i] = pose
            else:
                link.stamps.insert(i, stamp_ns)
                link.poses.insert(i, pose)
            oldest = link.stamps[-1] - self.cache_ns
            drop = bisect.bisect_left(link.stamps, oldest)
            if drop:
                del link.stamps[:drop], link.poses[:drop]

    def frames(self) -> set[str]:
        with self._lock:
            return set(self._links) | {link.parent for link in self._links.values()}

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray:
        """``source``'s pose in ``target`` at ``stamp_ns`` (0: the latest time the chain is known),
        as tf2's ``lookup_transform(target, source, time)``: a point p in ``source`` is
        compose(result, p) in ``target``. TransformError subclasses say why it cannot be."""
        target, source = target.lstrip("/"), source.lstrip("/")
        with self._lock:
            known = set(self._links) | {link.parent for link in self._links.values()}
            for frame in (target, source):
                if frame not in known:
                    raise UnknownFrameError(f"frame {frame!r} does not exist (known: {sorted(known) or 'none'})")
            if target == source:
                return IDENTITY.copy()
            up_source, up_target = self._chain(source), self._chain(target)
            in_target = {f for f, _ in up_target}
            common = next((f for f, _ in up_source if f in in_target), None)
            if common is None:
                raise ConnectivityError(f"{target!r} and {source!r} are not in one tree: {source!r}'s root is "
                                        f"{up_source[-1][0]!r}, {target!r}'s {up_target[-1][0]!r}")
            if stamp_ns == 0:
                links = [link for chain in (up_source, up_target) for _f, link in chain[:self._index(chain, common)]]
                stamp_ns = self._latest_common(links)
            source_in_common = self._chain_pose(up_source, common, stamp_ns)
            target_in_common = self._chain_pose(up_target, common, stamp_ns)
            return compose(invert(target_in_common), source_in_common)

    # --- internals (called with the lock held) -----------------------------------------
    def _chain(self, frame: str) -> list[tuple[str, _Link | None]]:
        """[(frame, its link to its parent), (parent, ...), ..., (root, None)]."""
        out, seen = [], set()
        while frame in self._links and frame not in seen:
            seen.add(frame)
            out.append((frame, self._links[frame]))
            frame = self._links[frame].parent
        out.append((frame, None))
        return out

    @staticmethod
    def _index(chain, frame: str) -> int:
        return next(i for i, (f, _) in enumerate(chain) if f == frame)

    def _chain_pose(self, chain, common: str, stamp_ns: int) -> np.ndarray:
        """The pose of chain[0]'s frame in ``common``."""
        pose = IDENTITY
        for frame, link in chain[:self._index(chain, common)]:
            pose = compose(self._pose_at(link, frame, stamp_ns), pose)
        return pose

    @staticmethod
    def _latest_common(links: list[_Link]) -> int:
        dynamic = [link for link in links if not link.static]
        return min(link.stamps[-1] for link in dynamic) if dynamic else 0

    @staticmethod
    def _pose_at(link: _Link, frame: str, stamp_ns: int) -> np.ndarray:
        if link.static:
            return link.poses[0]
        stamps = link.stamps
        if stamp_ns == 0 or (len(stamps) == 1 and stamps[0] == stamp_ns):
            return link.poses[-1] if stamp_ns == 0 else link.poses[0]
        if not stamps[0] <= stamp_ns <= stamps[-1]:
            raise ExtrapolationError(
                f"{link.parent!r} -> {frame!r} is known from {stamps[0] / 1e9:.3f} s to {stamps[-1] / 1e9:.3f} s, "
                f"not at {stamp_ns / 1e9:.3f} s ({'in the future' if stamp_ns > stamps[-1] else 'in the past'})")
        i = bisect.bisect_left(stamps, stamp_ns)
        if stamps[i] == stamp_ns:
            return link.poses[i]
        t = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
        return interpolate(link.poses[i - 1], link.poses[i], t)
