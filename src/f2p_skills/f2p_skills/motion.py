"""Paths, joint trajectories and the checks every trajectory passes before it is sent.

A skill moves the TCP along straight Cartesian lines (approach, lift, transport, place,
retreat), so that where it goes between two poses is known and checkable: each line is cut into
``step`` m pieces, each solved by IK seeded with the previous configuration; a joint jumping by
more than ``max_joint_step`` rad between neighbours means the line crosses a singularity or a
branch change, and the line is refused. The path is then timed by one trapezoidal velocity
profile along it, in the normalised joint metric (max_j |dq_j| / v_max_j), so no joint exceeds
its velocity (scaled by ``speed``) or acceleration limit.

Before a trajectory is sent, :func:`check_trajectory` verifies every waypoint: joints within
their limits, and no gripper point (TCP, fingertips, the gripper's body) below the top of a
support or obstacle box it is over — except the target's own box during the phases that touch
it. A skill whose trajectory fails a check never moves.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from f2p_common.interfaces import OrientedBox
from f2p_skills.kinematics import IKError, Kinematics


class PathError(ValueError):
    """A path that cannot be followed (the message says where)."""


@dataclass
class Trajectory:
    """Joint waypoints ``positions`` (N, n) reached at ``times`` (N,) s from the start, with
    ``velocities`` (N, n); N ≥ 2, ``times[0] == 0``."""

    joints: tuple[str, ...]
    positions: np.ndarray
    times: np.ndarray
    velocities: np.ndarray = field(default=None)

    @property
    def duration(self) -> float:
        return float(self.times[-1])


def interpolate_poses(a: np.ndarray, b: np.ndarray, step: float) -> list[np.ndarray]:
    """4x4 poses from ``a`` to ``b`` (both included), ≤ ``step`` m and ≤ 0.1 rad apart."""
    dist = float(np.linalg.norm(b[:3, 3] - a[:3, 3]))
    ra, rb = Rotation.from_matrix(a[:3, :3]), Rotation.from_matrix(b[:3, :3])
    angle = float((ra.inv() * rb).magnitude())
    n = max(1, int(np.ceil(max(dist / step, angle / 0.1))))
    slerp = Slerp([0.0, 1.0], Rotation.concatenate([ra, rb]))
    out = []
    for t in np.linspace(0.0, 1.0, n + 1):
        m = np.eye(4)
        m[:3, :3] = slerp([t]).as_matrix()[0]
        m[:3, 3] = (1 - t) * a[:3, 3] + t * b[:3, 3]
        out.append(m)
    return out


def cartesian_path(kin: Kinematics, q_start, poses: list[np.ndarray], step: float = 0.01,
                   max_joint_step: float = 0.25) -> np.ndarray:
    """Joint waypoints moving the TCP from where ``q_start`` puts it through ``poses`` along
    straight lines (module docstring); PathError when a line cannot be followed, IKError when a
    pose is out of reach."""
    q = np.asarray(q_start, np.float64)
    out, here = [q], kin.fk(q)
    for target in poses:
        for pose in interpolate_poses(here, target, step)[1:]:
            q_next = kin.ik(pose, q)
            jump = float(np.abs(q_next - q).max())
            if jump > max_joint_step:
                p = pose[:3, 3]
                raise PathError(f"the straight line crosses a singularity near ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m "
                                f"(a joint would jump {jump:.2f} rad)")
            out.append(q_next)
            q = q_next
        here = target
    return np.array(out)


def joint_path(q_start, q_goal, max_joint_step: float = 0.05) -> np.ndarray:
    """Straight joint-space waypoints from ``q_start`` to ``q_goal``."""
    a, b = np.asarray(q_start, np.float64), np.asarray(q_goal, np.float64)
    n = max(1, int(np.ceil(np.abs(b - a).max() / max_joint_step)))
    return np.array([a + t * (b - a) for t in np.linspace(0.0, 1.0, n + 1)])


def time_path(joints: tuple[str, ...], path: np.ndarray, max_velocity, max_acceleration,
              speed: float = 1.0) -> Trajectory:
    """``path`` timed by one trapezoidal profile along it (module docstring); ``speed`` in (0, 1]
    scales the velocity limits (and the accelerations by its square)."""
    if not 0.0 < speed <= 1.0:
        raise ValueError("speed must be in (0, 1]")
    path = np.asarray(path, np.float64)
    if len(path) < 2:
        path = np.vstack([path, path])
    vmax = np.asarray(max_velocity, np.float64) * speed
    amax = np.asarray(max_acceleration, np.float64) * speed * speed
    # s: the time each piece takes at full speed; the profile runs s at rate 1 with the
    # normalised acceleration the stiffest joint allows.
    ds = np.abs(np.diff(path, axis=0)) / vmax
    seg = ds.max(axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(s[-1])
    if total <= 0.0:
        times = np.linspace(0.0, 0.01, len(path))
        return Trajectory(joints, path, times, np.zeros_like(path))
    a_norm = float(np.min(amax / vmax))                 # d(rate)/dt: rate 1 reached after 1/a_norm s
    t_acc = 1.0 / a_norm
    if total < t_acc:                                   # a triangle: never at full speed
        t_acc = np.sqrt(total / a_norm)
        peak = a_norm * t_acc
    else:
        peak = 1.0
    s_acc = 0.5 * a_norm * t_acc ** 2
    t_cruise = (total - 2 * s_acc) / peak
    times = np.empty(len(s))
    for i, si in enumerate(s):
        if si <= s_acc:
            times[i] = np.sqrt(2 * si / a_norm)
        elif si <= total - s_acc:
            times[i] = t_acc + (si - s_acc) / peak
        else:
            rest = max(total - si, 0.0)
            times[i] = 2 * t_acc + t_cruise - np.sqrt(2 * rest / a_norm)
    times = np.maximum.accumulate(times)
    times[1:] = np.maximum(times[1:], times[:-1] + 1e-4)     # strictly increasing
    vel = np.gradient(path, times, axis=0)
    vel[0] = vel[-1] = 0.0
    return Trajectory(joints, path, times - times[0], vel)


def gripper_points(kin: Kinematics, q, aperture: float | None = None) -> np.ndarray:
    """Points of the gripper (base frame) that must stay out of supports: the TCP; each pad at the
    TCP and at its tip, at both of its edges (``aperture`` m apart; None: fully open); the
    gripper's body between the flange and the pads."""
    tcp = kin.fk(q)
    g = kin.arm.gripper
    x, y, z, p = tcp[:3, 0], tcp[:3, 1], tcp[:3, 2], tcp[:3, 3]
    half = 0.5 * (g.max_aperture if aperture is None else aperture) + 0.004        # the pads' middle
    pads = [p + s * x * half + e * y * 0.01 + d * z * g.finger_depth
            for s in (1, -1) for e in (1, -1) for d in (0, 1)]
    return np.array([p, *pads, p - z * 0.5 * g.tcp_offset, p - z * g.tcp_offset])


def _inside(points: np.ndarray, box: OrientedBox, margin: float) -> np.ndarray:
    """Which points lie in ``box`` grown by ``margin`` (its top raised by it)."""
    local = Rotation.from_quat(box.orientation).inv().apply(points - np.asarray(box.center))
    half = 0.5 * np.asarray(box.size) + margin
    return np.all(np.abs(local) <= half, axis=1)


def check_trajectory(kin: Kinematics, traj: Trajectory, obstacles: list[OrientedBox], margin: float = 0.005,
                     aperture: float | None = None) -> None:
    """PathError unless every waypoint keeps its joints within the limits and its gripper
    points (pads ``aperture`` m apart) out of every ``obstacles`` box (grown by ``margin``). The
    caller leaves out what the gripper may touch: the target, the container it is taken from."""
    for k, q in enumerate(traj.positions):
        if not kin.within_limits(q):
            bad = [f"{n} {v:.3f}" for n, v, lo, hi in zip(traj.joints, q, kin.lower, kin.upper) if not lo <= v <= hi]
            raise PathError(f"waypoint {k} leaves the joint limits: {', '.join(bad)}")
        pts = gripper_points(kin, q, aperture)
        for i, box in enumerate(obstacles):
            if _inside(pts, box, margin).any():
                c = np.asarray(box.center)
                raise PathError(f"waypoint {k} of {len(traj.positions)} would put the gripper into the box at "
                                f"({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f}) m (top {c[2] + 0.5 * box.size[2]:.3f} m)")


__all__ = ["IKError", "PathError", "Trajectory", "cartesian_path", "check_trajectory", "gripper_points",
           "interpolate_poses", "joint_path", "time_path"]
