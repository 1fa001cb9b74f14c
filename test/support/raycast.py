"""Depth frames ray-cast in code: axis-aligned boxes on a table, seen by a pinhole camera above
it (perception tests; no renderer, exact and fast)."""
import math

import numpy as np
from scipy.spatial.transform import Rotation

TABLE = ((0.3, 1.5), (-0.6, 0.6), 0.75)             # x range, y range, height (m)


def intrinsics(scale: float = 0.5) -> tuple[float, float, float, float]:
    """A Kinect's at 640x480 (fx = fy = 525, centre (319.5, 239.5)) at ``scale``."""
    return 525.0 * scale, 525.0 * scale, (640 * scale - 1) / 2, (480 * scale - 1) / 2


INTRINSICS = intrinsics(0.5)                         # the frames' default: 320x240


def camera(pitch_deg: float = 50.0, height: float = 1.45):
    """The optical frame's rotation (columns: its axes in the base frame) and position: above
    the origin, looking along +x, pitched down."""
    p = math.radians(pitch_deg)
    forward = np.array([math.cos(p), 0.0, -math.sin(p)])
    right = np.array([0.0, -1.0, 0.0])
    down = np.cross(forward, right)
    return np.column_stack([right, down, forward]), np.array([0.0, 0.0, height])


def render(boxes, pitch_deg: float = 50.0, noise: float = 0.0, seed: int = 0, scale: float = 0.5):
    """(depth, instance: 0 table or nothing, k the k-th box (both (480, 640) x ``scale``), camera
    pose) of axis-aligned ``boxes`` ((lo xyz), (hi xyz)) on the table, ray-cast with
    ``intrinsics(scale)``."""
    rot, pos = camera(pitch_deg)
    fx, fy, cx, cy = intrinsics(scale)
    h, w = int(480 * scale), int(640 * scale)
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u, float)], -1).reshape(-1, 3) @ rot.T
    best = np.full(len(rays), np.inf)
    inst = np.zeros(len(rays), np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (TABLE[2] - pos[2]) / rays[:, 2]                 # the table's top
        hit = pos + t[:, None] * rays
        on = (t > 0) & (hit[:, 0] >= TABLE[0][0]) & (hit[:, 0] <= TABLE[0][1]) & \
             (hit[:, 1] >= TABLE[1][0]) & (hit[:, 1] <= TABLE[1][1])
        best[on] = t[on]
        for k, (lo, hi) in enumerate(boxes, start=1):       # slab method
            t1, t2 = (np.asarray(lo) - pos) / rays, (np.asarray(hi) - pos) / rays
            near, far = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
            front = (near <= far) & (near > 0) & (near < best)
            best[front] = near[front]
            inst[front] = k
    depth = np.where(np.isfinite(best), best, np.nan).reshape(h, w)    # rays have optical z = 1
    if noise:
        depth = depth + np.random.default_rng(seed).normal(0.0, noise, depth.shape)
    pose = tuple(pos) + tuple(Rotation.from_matrix(rot).as_quat())
    return depth.astype(np.float32), inst.reshape(h, w), pose


def box(center, size):
    c, s = np.asarray(center, float), 0.5 * np.asarray(size, float)
    return tuple(c - s), tuple(c + s)
