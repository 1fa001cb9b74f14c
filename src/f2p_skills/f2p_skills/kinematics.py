"""Forward and inverse kinematics of the TCP (the gripper pads' centre) in the arm's base frame.

UR arms: the closed form of ``ur_analytic_ik`` (UR's DH parameters: up to 8 solutions in
~20 us), which works in the controller's ``base`` frame; ``base_link`` is ``base`` turned by π
about z (ur_description). Each solution's joints are shifted by whole turns to lie nearest the
current configuration within the limits, and the nearest solution wins, so consecutive poses of
a path stay on one branch (no elbow or wrist flips).
"""
from __future__ import annotations

import math

import numpy as np

from f2p_skills.arms import ArmSpec

#: base_link <- base (ur_description: base is base_link rotated by π about z).
_BASE_LINK_FROM_BASE = np.diag([-1.0, -1.0, 1.0, 1.0])


class IKError(ValueError):
    """No joint configuration within the limits reaches the pose."""


def translation(xyz) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = xyz
    return t


def top_down(position, yaw: float) -> np.ndarray:
    """The TCP pose pointing straight down (z to -z of the base) with its fingers closing
    along ``yaw`` (rad about the base's z) at ``position``."""
    c, s = math.cos(yaw), math.sin(yaw)
    t = np.eye(4)
    # x: the direction the fingers close along; z: down; y = z × x
    t[:3, 0] = [c, s, 0.0]
    t[:3, 2] = [0.0, 0.0, -1.0]
    t[:3, 1] = np.cross(t[:3, 2], t[:3, 0])
    t[:3, 3] = position
    return t


def side_on(position, heading: float) -> np.ndarray:
    """The TCP pose with the gripper's z horizontal along ``heading`` (a push's direction),
    fingers closing vertically."""
    c, s = math.cos(heading), math.sin(heading)
    t = np.eye(4)
    t[:3, 2] = [c, s, 0.0]
    t[:3, 0] = [0.0, 0.0, -1.0]
    t[:3, 1] = np.cross(t[:3, 2], t[:3, 0])
    t[:3, 3] = position
    return t


class Kinematics:
    """TCP kinematics of ``arm`` (module docstring)."""

    def __init__(self, arm: ArmSpec):
        if arm.kinematics not in ("ur5e",):
            raise ValueError(f"no kinematics {arm.kinematics!r} (known: ur5e)")
        import ur_analytic_ik
        self.arm = arm
        self._solver = getattr(ur_analytic_ik, arm.kinematics)
        self._tcp = translation([0.0, 0.0, arm.gripper.tcp_offset])
        self._tcp_inv = translation([0.0, 0.0, -arm.gripper.tcp_offset])
        self.lower, self.upper = np.array(arm.lower), np.array(arm.upper)

    def flange(self, q) -> np.ndarray:
        """The flange's (``tip_frame``) pose in ``base_frame``, 4x4."""
        return _BASE_LINK_FROM_BASE @ self._solver.forward_kinematics(*(float(v) for v in q))

    def fk(self, q) -> np.ndarray:
        """The TCP's pose in ``base_frame``, 4x4."""
        return self.flange(q) @ self._tcp

    def within_limits(self, q, margin: float = 0.0) -> bool:
        q = np.asarray(q, np.float64)
        return bool(np.all(q >= self.lower + margin) and np.all(q <= self.upper - margin))

    def solutions(self, tcp_pose: np.ndarray, seed) -> list[np.ndarray]:
        """Every configuration within the limits putting the TCP at ``tcp_pose``, each joint
        shifted by whole turns nearest ``seed``; nearest first."""
        base_pose = _BASE_LINK_FROM_BASE.T @ np.asarray(tcp_pose, np.float64) @ self._tcp_inv
        seed = np.asarray(seed, np.float64)
        out = []
        for q in self._solver.inverse_kinematics(np.ascontiguousarray(base_pose)):
            if not np.all(np.isfinite(q)):
                continue
            q = seed + (np.asarray(q) - seed + math.pi) % (2 * math.pi) - math.pi      # nearest turn
            for j in range(len(q)):                                                    # back inside the limits
                while q[j] > self.upper[j]:
                    q[j] -= 2 * math.pi
                while q[j] < self.lower[j]:
                    q[j] += 2 * math.pi
            if self.within_limits(q):
                out.append(q)
        out.sort(key=lambda q: float(np.abs(q - seed).max()))
        return out

    def ik(self, tcp_pose: np.ndarray, seed) -> np.ndarray:
        """The configuration nearest ``seed`` that puts the TCP at ``tcp_pose``; IKError if none."""
        sols = self.solutions(tcp_pose, seed)
        if not sols:
            p = np.asarray(tcp_pose)[:3, 3]
            raise IKError(f"no configuration of {self.arm.name} within its joint limits reaches "
                          f"({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m in {self.arm.base_frame}")
        return sols[0]
