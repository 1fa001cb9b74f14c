"""The simulated arm robot without ROS: a scene of the simulator with the UR5e and its gripper,
stepped continuously, driven as the vendor's controllers drive the real one.

* **Trajectories** as ros2_control's joint_trajectory_controller (UR's scaled one) follows
  them: every arm joint named (else ``INVALID_JOINTS``), finite positions within the joint
  limits and strictly increasing times (else ``INVALID_GOAL``); the controller moves from where
  the joints are to the first point, then interpolates the points linearly in time; time runs
  at ``speed_scaling`` (UR's speed slider: 1 = as planned, 0 = paused). A joint farther than
  its path tolerance from the reference aborts with ``PATH_TOLERANCE_VIOLATED``; not within the
  goal tolerance ``goal_time_tolerance`` after the end, ``GOAL_TOLERANCE_VIOLATED``. The UR
  driver's defaults: path 0.2 rad, goal 0.1 rad per joint (``ur_controllers.yaml``).
* **Protective stop** as UR's safety system: a contact of the arm (or the gripper against
  anything it does not hold: a table, the floor) pushing harder than ``protective_stop_n``
  stops the arm where it is and aborts the trajectory; nothing moves until
  :meth:`unlock_protective_stop` (the dashboard's ``unlock_protective_stop``).
* **Gripper** as the Robotiq 2F-85's ``GripperCommand``: a knuckle position (0 open .. 0.8 rad
  closed) and a ``max_effort``; the jaws close until they reach the position or stall on the
  object (then ``stalled``), and the object is held by friction.

Every method holds the world's lock (MuJoCo is not thread-safe); :meth:`step` is what a driver
calls in its control loop.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import mujoco
import numpy as np

from f2p_sim.arm_model import GRIPPER_JOINT, PAD_TRAVEL, SERVO_KP, SERVO_KV, SQUEEZE, UR5E_RANGE, Ur5eRig
from f2p_sim.robot import SceneInfo, SimRobot

#: control_msgs/FollowJointTrajectory result codes.
SUCCESSFUL, INVALID_GOAL, INVALID_JOINTS, OLD_HEADER_TIMESTAMP, PATH_TOLERANCE_VIOLATED, GOAL_TOLERANCE_VIOLATED = \
    0, -1, -2, -3, -4, -5
#: The knuckle's closed position (rad), the Robotiq driver's unit.
KNUCKLE_CLOSED = 0.8


class _Both:
    """Two locks taken in order (this world's, then the simulator's) and released in reverse."""

    def __init__(self, outer, inner):
        self.outer, self.inner = outer, inner

    def __enter__(self):
        self.outer.acquire()
        self.inner.acquire()

    def __exit__(self, *exc):
        self.inner.release()
        self.outer.release()


class TrajectoryRejected(ValueError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class TrajectoryOutcome:
    error_code: int
    error_string: str


@dataclass
class _Active:
    positions: np.ndarray                 # (N + 1, n): the joints when accepted, then the points
    times: np.ndarray                     # (N + 1,)
    path_tolerance: np.ndarray
    goal_tolerance: np.ndarray
    goal_time_tolerance: float
    t: float = 0.0                        # trajectory time (scaled)
    settle: float = 0.0                   # time since the end


class ArmWorld:
    """The simulated UR5e cell (module docstring)."""

    def __init__(self, world: dict, rig: Ur5eRig | None = None, camera: str = "front", seed: int = 0,
                 protective_stop_n: float = 150.0):
        self.rig = rig or Ur5eRig()
        self.sim = SimRobot(world, camera, "world", seed=seed, robot=self.rig)
        self._outer = threading.RLock()          # held across a reset: the model and its indices change
        self.lock = _Both(self._outer, self.sim.lock)
        self.joints = self.rig.joints
        self.protective_stop_n = float(protective_stop_n)
        self.speed_scaling = 1.0
        self.protective_stopped = False
        self.stop_reason = ""
        #: Physics steps in which the arm or gripper touched something not movable, and the largest
        #: such contact force (N): what "never through a support" is measured by.
        self.support_contact_steps, self.max_support_force = 0, 0.0
        self._active: _Active | None = None
        self._outcome: TrajectoryOutcome | None = None
        self._hold: np.ndarray | None = None
        self._gripper_target = 0.0
        self._gripper_still = 0.0
        self._ready = False
        self._lead = np.array(SERVO_KV) / np.array(SERVO_KP)
        self.lower = np.array([lo for lo, _ in UR5E_RANGE])
        self.upper = np.array([hi for _, hi in UR5E_RANGE])

    # --- scenes ----------------------------------------------------------------------
    def reset_task(self, kind: str, n_objects: int, seed: int) -> SceneInfo:
        with self._outer:                       # nothing of this world runs until the new model is indexed
            self._ready = False
            info = self.sim.reset_task(kind, n_objects, seed)
            with self.sim.lock:
                self._index()
                self._ready = True
            self._active, self._outcome, self._hold = None, None, None
            self.protective_stopped, self.stop_reason = False, ""
            self._gripper_target = 0.0
        return info

    def _index(self) -> None:
        m = self.sim.backend.model
        self._qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.joints])
        self._dadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.joints])
        self._act = np.array([m.actuator(j).id for j in self.joints])
        jaws = (GRIPPER_JOINT, GRIPPER_JOINT.replace("left", "right"))
        self._grip_act = np.array([m.actuator(j).id for j in jaws])
        self._grip_q = np.array([m.jnt_qposadr[m.joint(j).id] for j in jaws])
        self._grip_v = np.array([m.jnt_dofadr[m.joint(j).id] for j in jaws])
        arm_bodies = {m.body(n).id for n in ("base", "link1", "link2", "link3", "link4", "link5", "link6")}
        self._arm_geom = np.array([m.geom_bodyid[g] in arm_bodies or _descends(m, m.geom_bodyid[g], arm_bodies)
                                   for g in range(m.ngeom)])
        self._gripper_geom = np.array([m.geom(g).name.startswith("gripper/") for g in range(m.ngeom)])
        self._movable_geom = self.sim.backend._geom_seg >= 0
        self._grip_force = float(m.actuator_forcerange[self._grip_act[0]][1])

    # --- state -------------------------------------------------------------------------
    def joint_state(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(names, positions, velocities, efforts): the six arm joints, then the gripper's knuckle
        (rad, 0 open .. 0.8 closed), as joint_state_broadcaster publishes them."""
        with self.lock:
            d = self.sim.backend.data
            q = d.qpos[self._qadr]
            v = d.qvel[self._dadr]
            e = d.actuator_force[self._act]
            knuckle = float(d.qpos[self._grip_q].mean()) / PAD_TRAVEL * KNUCKLE_CLOSED
            kv = float(d.qvel[self._grip_v].mean()) / PAD_TRAVEL * KNUCKLE_CLOSED
            return (list(self.joints) + [GRIPPER_JOINT], np.append(q, knuckle), np.append(v, kv),
                    np.append(e, float(np.abs(d.actuator_force[self._grip_act]).mean())))

    def time_ns(self) -> int:
        return self.sim.time_ns()

    def body_pose(self, name: str) -> np.ndarray:
        """(x, y, z, qx, qy, qz, qw) of body ``name`` in the world."""
        with self.lock:
            self.sim.backend._sync()
            b = self.sim.backend.data.body(name)
            w, x, y, z = b.xquat
            return np.array([*b.xpos, x, y, z, w])

    def object_centres(self) -> dict[str, np.ndarray]:
        """Each object's true centre (its bounds' middle) in ``base_link`` (what a test or a
        benchmark checks a skill against)."""
        with self.lock:
            b = self.sim.backend
            lo, hi = b._segment_aabbs()
            base = b.data.body("base_link")
            rot = base.xmat.reshape(3, 3)
            return {o: rot.T @ (0.5 * (lo[i] + hi[i]) - base.xpos) for i, o in enumerate(self.sim.scene.object_ids)}

    # --- the trajectory controller --------------------------------------------------------
    def start_trajectory(self, names, positions, times, path_tolerance=None, goal_tolerance=None,
                         goal_time_tolerance: float = 0.0) -> None:
        """Follow a trajectory (module docstring), replacing one running; TrajectoryRejected
        with the FollowJointTrajectory error code otherwise."""
        names = list(names)
        if sorted(names) != sorted(self.joints):
            raise TrajectoryRejected(INVALID_JOINTS, f"the controller's joints are {list(self.joints)}, the goal "
                                                     f"names {names}")
        order = [names.index(j) for j in self.joints]
        pos = np.asarray(positions, np.float64)[:, order]
        times = np.asarray(times, np.float64)
        if len(pos) == 0 or not np.isfinite(pos).all() or not np.isfinite(times).all():
            raise TrajectoryRejected(INVALID_GOAL, "the trajectory is empty or has non-finite values")
        if np.any(np.diff(times) <= 0) or times[0] < 0:
            raise TrajectoryRejected(INVALID_GOAL, "time_from_start must increase strictly")
        out = (pos < self.lower) | (pos > self.upper)
        if out.any():
            k, j = map(int, np.argwhere(out)[0])
            raise TrajectoryRejected(INVALID_GOAL, f"point {k} puts {self.joints[j]} at {pos[k, j]:.3f}, outside "
                                                   f"[{self.lower[j]:.3f}, {self.upper[j]:.3f}]")
        tol = lambda v, default: np.full(6, default) if v is None else np.asarray(v, np.float64)[order]  # noqa: E731
        with self.lock:
            if self.protective_stopped:
                raise TrajectoryRejected(INVALID_GOAL, f"the robot is protectively stopped ({self.stop_reason})")
            q0 = self.sim.backend.data.qpos[self._qadr].copy()
            if times[0] > 0:
                pos, times = np.vstack([q0, pos]), np.concatenate([[0.0], times])
            else:
                pos[0] = q0
            self._active = _Active(pos, times, tol(path_tolerance, 0.2), tol(goal_tolerance, 0.1),
                                   float(goal_time_tolerance))
            self._outcome, self._hold = None, None

    def trajectory_outcome(self) -> TrajectoryOutcome | None:
        """None while a trajectory runs (or none was given); its outcome once it ended."""
        with self.lock:
            return self._outcome

    def trajectory_progress(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(reference, actual, trajectory time) of the running trajectory, for feedback."""
        with self.lock:
            a = self._active
            if a is None:
                return None
            return self._reference(a), self.sim.backend.data.qpos[self._qadr].copy(), a.t

    def cancel_trajectory(self) -> None:
        """Stop where the arm is (the controller's cancel: hold the current position)."""
        with self.lock:
            self._stop_here()
            self._outcome = TrajectoryOutcome(SUCCESSFUL, "cancelled")

    def _stop_here(self) -> None:
        self._active = None
        self._hold = self.sim.backend.data.qpos[self._qadr].copy()

    @staticmethod
    def _reference(a: _Active) -> np.ndarray:
        t = min(a.t, a.times[-1])
        return np.array([np.interp(t, a.times, a.positions[:, j]) for j in range(a.positions.shape[1])])

    @staticmethod
    def _reference_velocity(a: _Active) -> np.ndarray:
        if a.t >= a.times[-1]:
            return np.zeros(a.positions.shape[1])
        k = min(int(np.searchsorted(a.times, a.t, side="right")), len(a.times) - 1)
        return (a.positions[k] - a.positions[k - 1]) / (a.times[k] - a.times[k - 1])

    # --- the gripper -----------------------------------------------------------------------
    def command_gripper(self, knuckle: float, max_effort: float = 0.0) -> None:
        """Close or open to ``knuckle`` rad (0 open .. 0.8 closed) with at most ``max_effort`` N
        (0: the gripper's own limit)."""
        with self.lock:
            m = self.sim.backend.model
            self._gripper_target = float(np.clip(knuckle, 0.0, KNUCKLE_CLOSED)) / KNUCKLE_CLOSED * PAD_TRAVEL
            force = self._grip_force if max_effort <= 0 else min(float(max_effort), self._grip_force)
            m.actuator_forcerange[self._grip_act] = [-force, force]
            self._gripper_still = 0.0

    def gripper_status(self) -> tuple[float, float, bool, bool]:
        """(knuckle position, effort N, stalled, reached_goal), as GripperCommand's result."""
        with self.lock:
            d = self.sim.backend.data
            q = float(d.qpos[self._grip_q].mean())
            reached = abs(q - self._gripper_target) < 5e-4
            stalled = not reached and self._gripper_still > 0.15
            return (q / PAD_TRAVEL * KNUCKLE_CLOSED, float(np.abs(d.actuator_force[self._grip_act]).mean()), stalled,
                    reached)

    # --- safety ------------------------------------------------------------------------------
    def trigger_protective_stop(self, reason: str) -> None:
        """Stop as a protective stop does (the pendant's stop button, an external safety input)."""
        with self.lock:
            self._protective_stop(reason)

    def _protective_stop(self, why: str) -> None:
        self.protective_stopped, self.stop_reason = True, why
        if self._active is not None:
            self._outcome = TrajectoryOutcome(PATH_TOLERANCE_VIOLATED, f"protective stop: {why}")
        self._stop_here()

    def unlock_protective_stop(self) -> bool:
        with self.lock:
            was = self.protective_stopped
            self.protective_stopped, self.stop_reason = False, ""
            return was

    def _collision(self) -> tuple[str, bool]:
        """(why the arm must stop now, "" = it need not: a contact of the arm, or of the gripper
        against something not movable, pushing harder than protective_stop_n; whether the arm or
        gripper touches something not movable at all: a table, the pedestal, the floor)."""
        m, d = self.sim.backend.model, self.sim.backend.data
        force = np.zeros(6)
        touching = False
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = c.geom1, c.geom2
            arm1, arm2 = self._arm_geom[g1], self._arm_geom[g2]
            if arm1 == arm2:
                continue
            own, other = (g1, g2) if arm1 else (g2, g1)
            if self._movable_geom[other]:
                if self._gripper_geom[own]:
                    continue                               # the gripper holding or touching an object
            else:
                touching = True                            # the arm or gripper on a table, the floor
            mujoco.mj_contactForce(m, d, i, force)
            if not self._movable_geom[other]:
                self.max_support_force = max(self.max_support_force, abs(float(force[0])))
            if abs(force[0]) > self.protective_stop_n:
                return (f"{m.geom(own).name} pushed {m.geom(other).name or 'the floor'} with {abs(force[0]):.0f} N "
                        f"(> {self.protective_stop_n:g} N)"), True
        return "", touching

    # --- the control loop ---------------------------------------------------------------------
    def step(self, seconds: float) -> None:
        """Advance the world by ``seconds`` (whole physics steps), running the controllers."""
        with self.lock:
            if not self._ready:
                return
            b = self.sim.backend
            dt = b.model.opt.timestep
            for _ in range(max(1, int(round(seconds / dt)))):
                self._control(dt)
                b.step(1)
                if not self.protective_stopped:
                    why, touching = self._collision()
                    self.support_contact_steps += int(touching)
                    if why:
                        self._protective_stop(why)

    def _control(self, dt: float) -> None:
        d = self.sim.backend.data
        a = self._active
        if a is not None:
            a.t += dt * (0.0 if self.protective_stopped else self.speed_scaling)
            ref = self._reference(a)
            # the servo's damping pulls towards rest: feed the reference's velocity forward
            d.ctrl[self._act] = ref + self._lead * self._reference_velocity(a) * self.speed_scaling
            err = np.abs(d.qpos[self._qadr] - ref)
            bad = np.nonzero((a.path_tolerance > 0) & (err > a.path_tolerance))[0]
            if len(bad):
                j = int(bad[0])
                self._outcome = TrajectoryOutcome(PATH_TOLERANCE_VIOLATED, f"{self.joints[j]} is {err[j]:.3f} rad from "
                                                                          f"the reference (> {a.path_tolerance[j]:g})")
                self._stop_here()
            elif a.t >= a.times[-1]:
                a.settle += dt * max(self.speed_scaling, 1e-9)
                goal_err = np.abs(d.qpos[self._qadr] - a.positions[-1])
                if np.all((a.goal_tolerance <= 0) | (goal_err <= a.goal_tolerance)) and \
                        np.all(np.abs(d.qvel[self._dadr]) < 0.2):
                    self._outcome, self._active = TrajectoryOutcome(SUCCESSFUL, ""), None
                    self._hold = a.positions[-1].copy()
                elif a.settle > a.goal_time_tolerance + 0.5:
                    j = int(np.argmax(goal_err - a.goal_tolerance))
                    self._outcome = TrajectoryOutcome(GOAL_TOLERANCE_VIOLATED, f"{self.joints[j]} ended {goal_err[j]:.3f} "
                                                                               f"rad from its goal")
                    self._stop_here()
        if self._active is None and self._hold is not None:
            d.ctrl[self._act] = self._hold
        target = self._gripper_target
        if target >= PAD_TRAVEL - 1e-9:               # fully closed: squeeze whatever is between the jaws
            target += SQUEEZE
        d.ctrl[self._grip_act] = target
        moving = float(np.abs(d.qvel[self._grip_v]).max()) > 1e-3
        self._gripper_still = 0.0 if moving else self._gripper_still + dt


def _descends(m, body: int, ancestors: set[int]) -> bool:
    while body > 0:
        if body in ancestors:
            return True
        body = int(m.body_parentid[body])
    return False
