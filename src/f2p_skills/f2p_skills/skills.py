"""The library's skills (``f2p_common.vocabulary.SKILLS``) as phases of arm and gripper motion,
planned from the target's box before anything moves (paper 000 A.10's primitives, on a real
arm).

``pick_place(dx, dy, dz)``: open the gripper; rise to the transit height (every box's top plus
``clearance``), move over the grasp point, turn the fingers across the target's narrow side (an
object wider than the gripper opens is taken by its rim nearest the arm: an open container's
wall), descend to the grasp height; close; lift back to the transit height (raised by the
object's height); carry it over grasp + (dx, dy); lower it to grasp + (dx, dy, dz); open; rise
by ``clearance``; go to the viewing pose. ``push(direction, distance)``: close the gripper;
transit over a point ``approach_gap`` behind the target's face, fingertips down to
``push_height`` over its support; push ``distance`` + the gap along ``direction``; rise; viewing
pose. Every phase's trajectory passes ``motion.check_trajectory`` (limits; the gripper never
inside a box other than the target) when planned: a skill that cannot be done whole does not
start. The drawer skills are not served by an arm without a handle model (``NOT_SUPPORTED``).

Errors carry a :class:`SkillErrorCode` — ``ExecuteSkill``'s result constants (a test pins them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from scipy.spatial.transform import Rotation

from f2p_common.interfaces import OrientedBox, SkillCall
from f2p_skills.kinematics import IKError, Kinematics, top_down
from f2p_skills.motion import PathError, Trajectory, cartesian_path, check_trajectory, joint_path, time_path


#: A rim grasp closes on the wall this far inside the box's face (m): the middle of the 4-10 mm
#: walls of bins, bags and cups (perception gives the box, not the wall).
RIM_INSET = 0.004
#: The opening around a rim (m): the wall and a centimetre each side, so that the inner pad
#: keeps clear of what the container holds.
RIM_OPENING = 0.03


class SkillErrorCode(IntEnum):
    """Why a skill was not executed: ``f2p_interfaces/action/ExecuteSkill``'s result constants."""

    NONE = 0
    INVALID_GOAL = 1
    NOT_READY = 2
    UNKNOWN_TARGET = 3
    EXECUTION_FAILED = 4
    CANCELLED = 5
    INTERNAL = 6
    UNREACHABLE = 7
    IK_FAILED = 8
    CONTROLLER_REJECTED = 9
    TOLERANCE_VIOLATED = 10
    GRASP_LOST = 11
    ROBOT_STOPPED = 12
    STALE_JOINT_STATES = 13
    NOT_SUPPORTED = 14


class SkillError(Exception):
    def __init__(self, message: str, code: SkillErrorCode):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SkillConfig:
    """clearance: over every box's top while moving between poses (m); approach_height: the
    straight descent's length to a grasp (m); grasp_depth: how far below the target's top the
    pads close (m); approach_gap: a push starts this far behind the face (m); push_height: the
    fingertips over the support while pushing (m); speed: fraction of the joint velocity limits;
    grasp_margin: the gripper opens this much wider than the target (m); min_grip: pads closer
    than this (m) after closing means nothing was grasped; step: Cartesian path resolution (m)."""

    clearance: float = 0.08
    approach_height: float = 0.08
    grasp_depth: float = 0.03
    approach_gap: float = 0.03
    push_height: float = 0.015
    speed: float = 0.5
    grasp_margin: float = 0.02
    min_grip: float = 0.002
    step: float = 0.01


@dataclass
class Phase:
    """One phase: a trajectory to follow, or a gripper command (``aperture`` m, None: none);
    ``expect_grasp``: after it, the gripper must hold something (pads apart by ≥ min_grip)."""

    name: str
    trajectory: Trajectory | None = None
    aperture: float | None = None
    expect_grasp: bool = False


@dataclass
class SkillPlan:
    skill: str
    phases: list[Phase] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(p.trajectory.duration for p in self.phases if p.trajectory is not None)


#: The walls and floor an open container is assumed to have (m): perception gives its box only.
WALL = 0.01


def _walls(box: OrientedBox) -> list[OrientedBox]:
    """An open container's four walls and floor, WALL thick, as boxes."""
    r = Rotation.from_quat(box.orientation).as_matrix()
    c, (sx, sy, sz) = np.asarray(box.center), box.size
    out = [OrientedBox(c - r[:, 2] * (sz - WALL) / 2, box.orientation, [sx, sy, WALL])]
    for axis, half, size in ((0, sx / 2, [WALL, sy, sz]), (1, sy / 2, [sx, WALL, sz])):
        for sign in (1.0, -1.0):
            out.append(OrientedBox(c + sign * r[:, axis] * (half - WALL / 2), box.orientation, size))
    return out


def _yaw(box: OrientedBox) -> float:
    r = Rotation.from_quat(box.orientation).as_matrix()
    return math.atan2(r[1, 0], r[0, 0])


def _top(box: OrientedBox) -> float:
    """The highest z of the box's corners."""
    r = Rotation.from_quat(box.orientation).as_matrix()
    return float(box.center[2] + 0.5 * np.abs(r[2]) @ box.size)


def _bottom(box: OrientedBox) -> float:
    r = Rotation.from_quat(box.orientation).as_matrix()
    return float(box.center[2] - 0.5 * np.abs(r[2]) @ box.size)


class SkillPlanner:
    """Plans :class:`SkillPlan` s for one arm (module docstring)."""

    def __init__(self, kin: Kinematics, cfg: SkillConfig = SkillConfig()):
        self.kin, self.cfg, self.arm = kin, cfg, kin.arm

    def plan(self, call: SkillCall, target: OrientedBox | None, q_now, obstacles: list[OrientedBox]) -> SkillPlan:
        """The phases of ``call`` on the object in ``target`` (base frame) from configuration
        ``q_now``, with ``obstacles`` (every other box: supports, other objects) to keep out of."""
        if target is None:
            raise SkillError(f"{call.skill} needs its target's box (none was given for {call.target_ids[0]!r})",
                             SkillErrorCode.UNKNOWN_TARGET)
        if float(np.min(target.size)) <= 0.0:
            raise SkillError(f"the target box of {call.target_ids[0]!r} is empty (size {list(target.size)})",
                             SkillErrorCode.INVALID_GOAL)
        q_now = np.asarray(q_now, np.float64)
        if not self.kin.within_limits(q_now):
            raise SkillError("the arm is outside its joint limits now; move it back by hand", SkillErrorCode.UNREACHABLE)
        try:
            if call.skill == "pick_place":
                return self._pick_place(call, target, q_now, obstacles)
            if call.skill == "push":
                return self._push(call, target, q_now, obstacles)
        except IKError as exc:
            raise SkillError(f"{call.skill} on {call.target_ids[0]}: {exc}", SkillErrorCode.UNREACHABLE) from None
        except PathError as exc:
            raise SkillError(f"{call.skill} on {call.target_ids[0]}: {exc}", SkillErrorCode.IK_FAILED) from None
        raise SkillError(f"{call.skill} is not served by the {self.arm.name} skill server (pick_place, push)",
                         SkillErrorCode.NOT_SUPPORTED)

    # --- skills ------------------------------------------------------------------------
    def _grasps(self, box: OrientedBox) -> list[tuple[np.ndarray, float, float]]:
        """Where to grasp, best first: (the pads' centre, the yaw they close along, the opening).
        Across the narrow side, then the wide one, where they fit the gripper; otherwise by the rim
        (an open container's wall), the sides nearest the arm's base first."""
        g, cfg = self.arm.gripper, self.cfg
        yaw, (sx, sy) = _yaw(box), box.size[:2]
        top, bottom = _top(box), _bottom(box)
        z = max(top - cfg.grasp_depth, bottom + g.finger_depth + 0.01)          # fingertips 1 cm over the support
        across = sorted((width, along) for width, along in ((sx, yaw), (sy, yaw + math.pi / 2))
                        if width + cfg.grasp_margin <= g.max_aperture)       # the narrow side first
        if across:
            return [(np.array([box.center[0], box.center[1], z]), along, width + cfg.grasp_margin)
                    for width, along in across]
        r = Rotation.from_quat(box.orientation).as_matrix()
        rims = []
        for axis, half in ((r[:, 0], 0.5 * sx), (r[:, 1], 0.5 * sy)):
            for sign in (1.0, -1.0):
                p = np.asarray(box.center) + sign * axis * (half - RIM_INSET)
                rims.append((float(np.linalg.norm(p[:2])), np.array([p[0], p[1], top - cfg.grasp_depth]),
                             math.atan2(axis[1], axis[0])))
        return [(p, along, RIM_OPENING) for _d, p, along in sorted(rims, key=lambda t: t[0])]

    def _transit_z(self, boxes: list[OrientedBox], carried: float = 0.0) -> float:
        tops = [_top(b) for b in boxes] or [0.0]
        return max(tops) + self.cfg.clearance + carried + self.arm.gripper.finger_depth

    def _reachable(self, poses: dict[str, np.ndarray], q) -> None:
        """IKError naming the first key pose no configuration reaches (before any path is cut)."""
        for name, pose in poses.items():
            try:
                self.kin.ik(pose, q)
            except IKError:
                x, y, z = pose[:3, 3]
                raise IKError(f"the {name} pose at ({x:.3f}, {y:.3f}, {z:.3f}) m in {self.arm.base_frame} is out of "
                              f"{self.arm.name}'s reach") from None

    def _timed(self, path: np.ndarray) -> Trajectory:
        return time_path(self.arm.joints, path, self.arm.max_velocity, self.arm.max_acceleration, self.cfg.speed)

    def _line(self, name: str, q, poses, obstacles, aperture=None) -> tuple[Phase, np.ndarray]:
        traj = self._timed(cartesian_path(self.kin, q, poses, self.cfg.step))
        try:
            check_trajectory(self.kin, traj, obstacles, aperture=aperture)
        except PathError as exc:
            raise PathError(f"{name}: {exc}") from None
        return Phase(name, traj), traj.positions[-1]

    def _to_viewing_pose(self, q, obstacles) -> Phase:
        traj = self._timed(joint_path(q, self.arm.home))
        try:
            check_trajectory(self.kin, traj, obstacles)
        except PathError as exc:
            raise PathError(f"to the viewing pose: {exc}") from None
        return Phase("view", traj)

    @staticmethod
    def _containers(obstacles, target) -> list[OrientedBox]:
        """The boxes ``target`` stands in (an open container: a bin, a bag): their footprint holds
        its centre and their top is above its bottom. The gripper reaches into them."""
        out = []
        for b in obstacles:
            local = Rotation.from_quat(b.orientation).inv().apply(np.asarray(target.center) - b.center)
            if np.all(np.abs(local[:2]) <= 0.5 * b.size[:2]) and _top(b) > _bottom(target) + 0.01:
                out.append(b)
        return out

    def _pick_place(self, call, target, q, obstacles) -> SkillPlan:
        cfg = self.cfg
        containers = self._containers(obstacles, target)
        # what the fingers keep out of: every other box, and of a container the target is in, its
        # walls and floor (the gripper reaches inside it)
        near = [b for b in obstacles if not any(b is c for c in containers)] + \
            [w for c in containers for w in _walls(c)]
        height = _top(target) - _bottom(target)
        z_free = self._transit_z(obstacles + [target])
        here = self.kin.fk(q)
        up = here.copy()
        up[2, 3] = max(here[2, 3], z_free)
        failure = None
        for grasp, yaw, opening in self._grasps(target):       # the first grasp whose descent is clear
            place = grasp + np.asarray(call.parameters, np.float64)
            over = top_down([grasp[0], grasp[1], max(z_free, grasp[2] + cfg.approach_height)], yaw)
            try:
                self._reachable({"grasp": top_down(grasp, yaw), "place": top_down(place, yaw), "pre-grasp": over}, q)
                approach, q1 = self._line("approach", q, [up, over], obstacles, aperture=opening)
                descend, q1 = self._line("descend", q1, [top_down(grasp, yaw)], near,
                                         aperture=opening)
                break
            except (IKError, PathError) as exc:
                failure = failure or exc
        else:
            raise failure
        q = q1
        plan = SkillPlan(call.skill, [Phase("open", aperture=opening), approach, descend])
        plan.phases.append(Phase("grasp", aperture=0.0, expect_grasp=True))
        z_carry = self._transit_z(obstacles, carried=height)
        carried_over = top_down([place[0], place[1], max(z_carry, place[2] + cfg.approach_height)], yaw)
        lift = top_down([grasp[0], grasp[1], carried_over[2, 3]], yaw)
        # the carried object moves with the pads: the gripper keeps out of every other box
        phase, q = self._line("lift", q, [lift], near, aperture=opening)
        plan.phases.append(phase)
        phase, q = self._line("transport", q, [carried_over], obstacles, aperture=opening)
        plan.phases.append(phase)
        phase, q = self._line("place", q, [top_down(place, yaw)], self._below(obstacles, place, height),
                              aperture=opening)
        plan.phases.append(phase)
        plan.phases.append(Phase("release", aperture=opening))
        retreat = top_down([place[0], place[1], place[2] + cfg.clearance], yaw)
        phase, q = self._line("retreat", q, [retreat], [])
        plan.phases.append(phase)
        plan.phases.append(self._to_viewing_pose(q, obstacles))
        return plan

    def _below(self, obstacles, place, height) -> list[OrientedBox]:
        """The boxes the gripper must not enter while lowering an object onto them: those below
        the object, with their tops lowered by what the pads reach under its bottom."""
        return [b for b in obstacles if _top(b) < place[2] - height + self.cfg.grasp_depth]

    def _push(self, call, target, q, obstacles) -> SkillPlan:
        cfg, g = self.cfg, self.arm.gripper
        direction, distance = (float(v) for v in call.parameters)
        u = np.array([math.cos(direction), math.sin(direction), 0.0])
        r = Rotation.from_quat(target.orientation).as_matrix()
        reach = 0.5 * float(np.abs(r[:2, :2].T @ u[:2]) @ target.size[:2])     # centre to face along u
        z_tips = _bottom(target) + cfg.push_height
        start = np.asarray(target.center) - u * (reach + cfg.approach_gap + 0.01)
        start[2] = z_tips + g.finger_depth
        yaw = direction + math.pi / 2                          # closed fingers broadside to the push
        z_free = self._transit_z(obstacles + [target])
        here = self.kin.fk(q)
        up = here.copy()
        up[2, 3] = max(here[2, 3], z_free)
        over = top_down([start[0], start[1], z_free], yaw)
        end = start + u * (distance + cfg.approach_gap)
        self._reachable({"push start": top_down(start, yaw), "push end": top_down(end, yaw)}, q)
        plan = SkillPlan(call.skill, [Phase("close", aperture=0.0)])
        phase, q = self._line("approach", q, [up, over, top_down(start, yaw)], obstacles)
        plan.phases.append(phase)
        phase, q = self._line("push", q, [top_down(end, yaw)], self._supports_only(obstacles, target))
        plan.phases.append(phase)
        phase, q = self._line("retreat", q, [top_down(end + [0, 0, cfg.clearance], yaw)], [])
        plan.phases.append(phase)
        plan.phases.append(self._to_viewing_pose(q, obstacles))
        return plan

    def _supports_only(self, obstacles, target) -> list[OrientedBox]:
        """While pushing, other objects may be pushed along; what the fingertips must stay out
        of is what the target stands on (boxes whose top is at most its bottom)."""
        return [b for b in obstacles if _top(b) <= _bottom(target) + 0.005]
