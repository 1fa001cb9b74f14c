"""Physical skill execution a policy can fail at (issue 33 part 1; paper 003 §3.1).

:class:`SkillEnv` lets a controller — AFIL's policy, or the :mod:`f2p_sim.demonstrator` —
run one of f2p's skills in the MuJoCo world in small steps: every control step moves the
gripper pad by a commanded displacement over :data:`f2p_afil.observation.CONTROL_PERIOD` of
physics and opens or closes the jaws. Nothing is scripted past that:

* the jaws hold an object only when they close while the pad touches it (within 3 mm; 1 cm of
  a drawer's front panel, whose handle the fingers reach around) and is aligned with it (:meth:`SkillEnv.grippable`): the pad centre over the middle of
  a solid object's top (inside its footprint shrunk by ``grip_margin`` of the half size), over
  an open container's front rim, or against the middle of a drawer's front panel. Closing
  anywhere else closes on air;
* what is held is carried (the weld of the backend, switched on only by such a close) until
  the jaws open; contents of a carried container ride by contact and friction;
* everything else — a pushed object sliding off its line or toppling, a dropped object
  falling, a neighbour knocked over — is contact physics.

So missed grasps, drops, topples, objects pushed astray and misplacements are outcomes of the
actions. :meth:`SkillEnv.outcome` judges the result against the skill's parameters
(:class:`SkillResult`). The free-space motion to the skill (home to the pre-skill pose) is the
arm planner's, not the controller's: :meth:`SkillEnv.begin` puts the pad a few cm above the
contact pose with a random error of up to ``start_noise``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from f2p_afil.controller import ControlStopped, ObservationError, drive
from f2p_afil.observation import CONTROL_PERIOD, SkillObservation, actions_to_motion
from f2p_common.vocabulary import MOVABLE_CLASSES
from f2p_sim.mujoco_backend import MOVED_DISTANCE, MujocoBackend
from f2p_sim.skills import SkillError, SkillReport, check_skill, grasp_point, push_start

#: Metres of tolerance on where the skill's reference point must end (xy), and on a push's
#: distance and line.
PLACE_TOLERANCE = 0.03
#: A drawer counts as moved as asked within this many metres.
DRAWER_TOLERANCE = 0.02
#: An object whose box height changed by more than this (m) toppled.
TOPPLE_HEIGHT = 0.01
#: Height above the contact pose at which a skill starts and repositions (m).
HOVER = 0.06


@dataclass(frozen=True)
class ControlConfig:
    """Step-wise control of :class:`SkillEnv`. ``max_steps``: control steps a skill may take
    before it is stopped (skill -> steps); ``start_noise``: metres of xy error (and half of it
    in z) of the pre-skill pose; ``grip_margin``: fraction of a solid object's half footprint
    the pad centre must stay inside for a grasp to hold (the jaws straddle the middle half);
    ``grip_distance`` / ``handle_distance``: how close (m) the pad must be to an object / a
    drawer's front panel (the fingers reach around a handle) to close on it; ``idle_steps``: control steps without
    motion, jaws open, after the target was touched, that end a skill."""

    max_steps: tuple[tuple[str, int], ...] = (("pick_place", 200), ("push", 120), ("open_drawer", 90),
                                              ("close_drawer", 90))
    start_noise: float = 0.03
    grip_margin: float = 0.5
    grip_distance: float = 0.003
    handle_distance: float = 0.01
    idle_steps: int = 4

    def steps_for(self, skill: str) -> int:
        return dict(self.max_steps)[skill]


@dataclass
class SkillResult:
    """How a step-wise skill ended. ``failure``: None on success, else one of ``missed_grasp``
    (never held the target), ``dropped`` (held it, let it go away from the goal), ``toppled``,
    ``misplaced`` (put down or pushed to the wrong place), ``not_moved`` (a drawer that did not
    move as asked), ``unstable`` (the world's stability checks failed); ``error``: (m) the
    reference point's distance from its goal; ``steps`` control steps taken; ``stopped`` the
    skill was stopped before it ended (cancel or step budget)."""

    success: bool
    failure: str | None
    error: float
    steps: int
    stopped: bool = False
    touched: list[int] = field(default_factory=list)


class SkillEnv:
    """One skill at a time, controlled in steps, in a loaded :class:`MujocoBackend` (module
    docstring). ``begin`` -> (``observe`` -> ``step``)* until ``done`` -> ``outcome``."""

    def __init__(self, backend: MujocoBackend, config: ControlConfig = ControlConfig()):
        self.backend = backend
        self.config = config
        self.substeps = max(1, int(round(CONTROL_PERIOD / backend.model.opt.timestep)))
        self.skill: str | None = None

    # ------------------------------------------------------------------ geometry of the skill
    def _wall(self, seg: int) -> float | None:
        b = self.backend
        obj = b.scene.objects[b.segments[seg].object_index]
        ccfg = b.cfg["classes"][obj.cls]
        return float(ccfg["wall_thickness"]) if ccfg["shape"] == "open_box" else None

    def _box(self, seg: int) -> tuple[np.ndarray, np.ndarray]:
        st = self.backend.segment_state()
        return st.box_lower[seg].copy(), st.box_upper[seg].copy()

    def _points(self) -> tuple[np.ndarray, np.ndarray]:
        """(contact, reference) of the skill's target now (f2p_afil.observation)."""
        lo, hi = self._box(self.target)
        pad = self.backend.pad_half
        if self.skill == "pick_place":
            ref = grasp_point(lo, hi, self._wall(self.target))
            return ref + [0.0, 0.0, pad[2] + 0.002], ref
        if self.skill == "push":
            start, _ = push_start(lo, hi, self.params[0], pad, 0.003)
            return start, 0.5 * (lo + hi)
        front, axis = self.backend.drawer_front(self.target)
        return front - axis * (pad[0] + 0.002), front

    def begin(self, skill: str, target: int, params, rng: np.random.Generator | None = None) -> SkillObservation:
        """Start ``skill`` on segment ``target``: SkillError for parameters outside the skill's
        box or a target the skill cannot act on; the pad goes to the pre-skill pose, jaws open."""
        params = check_skill(skill, params)
        b = self.backend
        if not isinstance(target, (int, np.integer)) or not 0 <= int(target) < len(b.segments):
            raise SkillError(f"target {target!r} is not a segment index 0..{len(b.segments) - 1}")
        target = int(target)
        cls = b.segments[target].cls
        if skill in ("pick_place", "push") and cls not in MOVABLE_CLASSES:
            raise SkillError(f"{skill} needs a movable target; {b.segments[target].name!r} is a {cls}")
        if skill in ("open_drawer", "close_drawer") and cls != "drawer":
            raise SkillError(f"{skill} needs a drawer target; {b.segments[target].name!r} is a {cls}")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.skill, self.target, self.params = skill, target, params
        b.release()
        self.closed = False
        self.steps = 0
        self.idle = 0
        self.touched: set[int] = set()
        self.ever_held = False
        self.stopped = False
        self.lo0, self.hi0 = self._box(target)
        self.opening0 = float(b.drawer_openings()[target])
        contact, ref = self._points()
        pad = b.pad_half
        if skill == "pick_place":
            self.goal = ref + np.asarray(params)
            self.heading = np.zeros(2)
            height = self.hi0[2] - self.lo0[2]
            self.transfer_z = float(max(ref[2], self.goal[2]) + pad[2] + height + 0.05)
        elif skill == "push":
            u = np.array([np.cos(params[0]), np.sin(params[0])])
            self.goal = ref + np.array([u[0], u[1], 0.0]) * params[1]
            self.heading = u
            self.transfer_z = float(contact[2] + HOVER)
        else:
            _, axis = b.drawer_front(target)
            sign = -1.0 if skill == "open_drawer" else 1.0
            self.goal = ref + sign * axis * params[0]
            h = sign * axis[:2]
            self.heading = h / max(np.linalg.norm(h), 1e-9)
            self.transfer_z = float(contact[2] + HOVER)
        noise = rng.uniform(-1.0, 1.0, 3) * self.config.start_noise * np.array([1.0, 1.0, 0.5])
        if skill in ("open_drawer", "close_drawer"):
            _, axis = b.drawer_front(target)
            start = contact - axis * 0.05 + noise
        else:
            start = contact + [0.0, 0.0, HOVER] + noise
        b.teleport_gripper(start)
        return self.observe()

    # ------------------------------------------------------------------ control
    def observe(self) -> SkillObservation:
        b = self.backend
        contact, ref = self._points()
        lo, hi = self._box(self.target)
        return SkillObservation(
            skill=self.skill, params=self.params, gripper=b.pad_center(), closed=self.closed,
            holding=b.held >= 0, loaded=b.held_supported(), target_lower=lo, target_upper=hi,
            contact=contact, reference=ref, goal=self.goal.copy(), transfer_z=self.transfer_z,
            heading=self.heading.copy())

    def grippable(self) -> int:
        """The segment the jaws would hold if they closed now (contact and alignment, module
        docstring), or -1."""
        b = self.backend
        st = b.segment_state()
        p = b.pad_center()
        m = self.config.grip_margin
        for seg, dist in sorted(b.pad_contacts(max(self.config.grip_distance, self.config.handle_distance)).items()):
            lo, hi = st.box_lower[seg], st.box_upper[seg]
            c, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
            cls = b.segments[seg].cls
            if dist > (self.config.handle_distance if cls == "drawer" else self.config.grip_distance):
                continue
            if cls == "drawer":
                front, axis = b.drawer_front(seg)
                lateral = np.array([-axis[1], axis[0], 0.0])
                off = p - front
                width = abs(lateral[0]) * half[0] + abs(lateral[1]) * half[1]
                if abs(off @ lateral) <= (1 - m) * width and abs(off[2]) <= (1 - m) * half[2]:
                    return seg
            elif cls in MOVABLE_CLASSES and p[2] > hi[2]:
                wall = self._wall(seg)
                if wall is None:
                    if np.all(np.abs(p[:2] - c[:2]) <= (1 - m) * half[:2]):
                        return seg
                elif abs(p[1] - c[1]) <= (1 - m) * half[1] and lo[0] - 0.005 <= p[0] <= lo[0] + wall + 0.012:
                    return seg
        return -1

    def step(self, actions: np.ndarray) -> None:
        """Execute (n, 4) actions (f2p_afil.observation), one control step each, until the skill
        is done or out of steps. ValueError for non-finite actions (nothing moves)."""
        moves, close = actions_to_motion(actions)
        b = self.backend
        limit = self.config.steps_for(self.skill)
        for d, c in zip(moves, close):
            if self.done:
                return
            self.touched |= b.move_gripper(b.gripper_pose()[0] + d, self.substeps)
            if c and not self.closed:
                self.closed = True
                seg = self.grippable()
                if seg >= 0:
                    b.grip(seg)
                    self.ever_held |= seg == self.target
            elif not c and self.closed:
                self.closed = False
                b.release()
            self.steps += 1
            still = float(np.linalg.norm(d)) < 2e-4 and not self.closed
            self.idle = self.idle + 1 if still and self.target in self.touched else 0
            if self.steps >= limit:
                self.stopped = True

    def snapshot(self) -> dict:
        """Everything needed to come back to this moment of the skill (:meth:`restore`): the
        physics, what the jaws hold, and the skill's own bookkeeping."""
        b = self.backend
        return {"state": b.get_state(), "grip": b.grip_state(), "closed": self.closed, "steps": self.steps,
                "idle": self.idle, "touched": set(self.touched), "ever_held": self.ever_held, "stopped": self.stopped}

    def restore(self, snap: dict) -> None:
        b = self.backend
        b.set_state(snap["state"])
        b.set_grip_state(snap["grip"])
        self.closed, self.steps, self.idle = snap["closed"], snap["steps"], snap["idle"]
        self.touched, self.ever_held, self.stopped = set(snap["touched"]), snap["ever_held"], snap["stopped"]

    @property
    def done(self) -> bool:
        return self.stopped or self.idle >= self.config.idle_steps

    def stop(self) -> None:
        """End the skill now (a cancel): the jaws open and let go of what they hold."""
        self.stopped = True

    def outcome(self) -> SkillResult:
        """Release, park the gripper, let the world settle, and judge the skill (SkillResult)."""
        b = self.backend
        b.release()
        self.closed = False
        b.teleport_gripper()
        b.settle()
        lo, hi = self._box(self.target)
        _, ref = self._points()
        flags = b.stability_issues()
        touched = sorted(self.touched)
        stopped = self.stopped and self.idle < self.config.idle_steps
        if self.skill in ("open_drawer", "close_drawer"):
            moved = float(b.drawer_openings()[self.target]) - self.opening0
            want = self.params[0] if self.skill == "open_drawer" else -self.params[0]
            err = abs(moved - want)
            ok = err <= DRAWER_TOLERANCE and not flags
            return SkillResult(ok, None if ok else ("unstable" if flags else "not_moved"), err, self.steps, stopped, touched)
        toppled = abs((hi[2] - lo[2]) - (self.hi0[2] - self.lo0[2])) > TOPPLE_HEIGHT
        if self.skill == "push":
            u = np.array([self.heading[0], self.heading[1], 0.0])
            disp = 0.5 * (lo + hi) - 0.5 * (self.lo0 + self.hi0)
            along, lateral = float(disp @ u), disp[:2] - float(disp @ u) * u[:2]
            err = float(np.hypot(along - self.params[1], np.linalg.norm(lateral)))
            fell = lo[2] < self.lo0[2] - 0.02
        else:
            err = float(np.linalg.norm(ref[:2] - self.goal[:2]))
            fell = lo[2] < self.goal[2] - (self.hi0[2] - self.lo0[2]) - 0.03
        ok = err <= PLACE_TOLERANCE and not toppled and not fell and not flags
        if ok:
            failure = None
        elif flags:
            failure = "unstable"
        elif toppled:
            failure = "toppled"
        elif self.skill == "pick_place" and not self.ever_held:
            failure = "missed_grasp"
        elif self.skill == "pick_place" and fell:
            failure = "dropped"
        else:
            failure = "misplaced"
        return SkillResult(ok, failure, err, self.steps, stopped, touched)


def execute_controlled(backend: MujocoBackend, skill: str, target: int, params, act, monitor=None,
                       rng: np.random.Generator | None = None, config: ControlConfig = ControlConfig()):
    """Run ``skill`` with a step-wise controller ``act`` (f2p_afil.controller.drive's) and report
    it as the scripted primitives do: (SkillReport, SkillResult). ``monitor``: an
    f2p_afil ControlMonitor (feedback per chunk, cancel). A cancel or an observation the
    controller refuses stops the skill cleanly: the jaws open where they are and the gripper
    parks (``report.stopped``; ``report.message`` says why)."""
    env = SkillEnv(backend, config)
    env.begin(skill, target, params, rng)
    st0 = backend.segment_state()
    c0 = 0.5 * (st0.box_lower + st0.box_upper)
    message = ""
    try:
        drive(env, act, monitor)
    except ControlStopped as e:
        message = str(e)
    except ObservationError as e:
        message = f"stopped: the controller refused its observation ({e})"
    result = env.outcome()
    st1 = backend.segment_state()
    disp = 0.5 * (st1.box_lower + st1.box_upper) - c0
    report = SkillReport(skill=skill, target=int(target), params=env.params, executed=True,
                         grasp_success=env.ever_held if skill in ("pick_place", "open_drawer", "close_drawer") else None,
                         gripper_contacts=result.touched, displacement=disp,
                         moved=[int(i) for i in np.nonzero(np.linalg.norm(disp, axis=1) > MOVED_DISTANCE)[0]],
                         flags=backend.stability_issues(), steps=result.steps * env.substeps,
                         message=message or (f"controller {'succeeded' if result.success else 'failed: ' + str(result.failure)}"
                                             f" in {result.steps} control steps"),
                         stopped=bool(message))
    if skill == "pick_place":
        report.achieved = disp[target]
    elif skill == "push":
        report.achieved = float(disp[target] @ np.array([env.heading[0], env.heading[1], 0.0]))
    else:
        report.achieved = float(backend.drawer_openings()[target]) - env.opening0
    return report, result
