"""Skills of paper 000 A.10 as motions of a floating gripper, planned from segment boxes.

The skill library, parameter order and boxes come from ``f2p_common.vocabulary.SKILLS``;
parameters are validated with ``SkillSpec.check`` before anything moves. This module plans
the *geometry* (grasp point, pre-push pose, pull axis) and holds the report type; a backend
executes the motion with real contact physics (``mujoco_backend``).

pick_place (dx, dy, dz)  Grasp point g: the top center of a solid object, or the middle of
    the front (-x) rim of an open container (so the pad does not land on its contents).
    The pad descends onto g and a weld constraint grasps (paper: "grasp pose"); the gripper
    lifts to a transfer height, moves over g + (dx, dy, dz), descends and releases when the
    carried object touches something or g + (dx, dy, dz) is reached (placement offset =
    "difference between the placement pose and the grasp pose", A.10). Anything resting in a
    carried container moves only through contact and friction.
push (direction, distance)  The pad is placed beside the target on the side opposite to the
    heading ``direction`` (rad about +z, 0 = +x), low above the support, then moves along
    the heading by ``distance`` plus the approach gap, so a free object moves by about
    ``distance``; a row of touching objects is pushed through contacts.
open_drawer / close_drawer (distance)  The pad grasps the drawer's front panel (a handle
    grasp) and pulls it out along the slide axis by ``distance`` (open) or pushes it in by
    ``distance`` (close). The joint limits decide what is achieved.

Free-space approach and retreat motions (gripper to pre-grasp / pre-push pose, back home)
are teleports of the mocap gripper: nothing is in contact then, and they are not part of
the effect being learned; they keep a transition at a few hundred physics steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from f2p_common.vocabulary import skill as skill_spec


class SkillError(ValueError):
    """A skill request that cannot be executed as asked (bad parameters or target)."""


@dataclass
class SkillReport:
    """What happened during a skill.

    executed        the motion ran (False: refused before moving, see ``message``).
    grasp_success   pick_place/open_drawer: the target followed the gripper; None otherwise.
    gripper_contacts segment indices the gripper pad touched.
    moved           segment indices displaced by more than 5 mm or 5 degrees.
    displacement    (S, 3) change of each segment's box center.
    achieved        skill-specific outcome: pick_place the target's final center minus its
                    start center; push the target's displacement along the heading; drawer
                    skills the change of the drawer opening (m).
    flags           stability problems found after settling (empty when trustworthy).
    steps           physics steps simulated.
    stopped         the motion was stopped on request (:class:`SkillMonitor`) before its end;
                    the gripper let go and went home, and the world was left to settle.
    """

    skill: str
    target: int
    params: tuple[float, ...]
    executed: bool = True
    grasp_success: bool | None = None
    gripper_contacts: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    displacement: np.ndarray | None = None
    achieved: np.ndarray | float | None = None
    flags: list[str] = field(default_factory=list)
    steps: int = 0
    message: str = ""
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.executed and not self.flags and not self.stopped


class SkillMonitor:
    """Watches a skill while a backend executes it (the simulated robot's action server uses
    it for feedback and cancel). ``phase`` is called as each motion phase starts, with the
    fraction of the skill's phases done; ``stop_requested`` is polled during motions and a True
    stops the skill where it is. The default watches nothing."""

    def phase(self, name: str, fraction: float) -> None:
        """A motion phase (approach, grasp, lift, transport, place, retreat, push, pull) starts."""

    def stop_requested(self) -> bool:
        return False


@dataclass(frozen=True)
class ExecutionPerturbation:
    """How an execution goes wrong in physics (paper 002 §III-B "execution failures": the
    executed action is perturbed, never the label). The default perturbs nothing.

    close_gripper  False: the pad reaches the grasp pose but the jaws never close, so nothing
                   is held ("no gripper close").
    contact_offset (dx, dy) m added to where the pad meets the target — the grasp point of
                   pick_place, the pre-push pose of push — as a badly
                   calibrated arm would ("imprecise grasp / push"). A grasp holds only when
                   the offset pad still lies over the target's top (alignment); otherwise the
                   gripper closes on air.
    slip_at        fraction in (0, 1) of the transport after which a held object slips out of
                   the jaws and falls wherever it is (None: it is held to the end).
    """

    close_gripper: bool = True
    contact_offset: tuple[float, float] = (0.0, 0.0)
    slip_at: float | None = None

    def __post_init__(self):
        off = tuple(float(v) for v in self.contact_offset)
        if len(off) != 2 or not all(np.isfinite(off)):
            raise ValueError(f"contact_offset must be two finite numbers (m), got {self.contact_offset}")
        object.__setattr__(self, "contact_offset", off)
        if self.slip_at is not None and not 0.0 < float(self.slip_at) < 1.0:
            raise ValueError(f"slip_at must be in (0, 1) or None, got {self.slip_at}")

    @property
    def is_none(self) -> bool:
        return self.close_gripper and self.contact_offset == (0.0, 0.0) and self.slip_at is None


#: The slips a physical skill controller makes (paper 002 §III-B execution failures 1 and 4).
SLIP_KINDS = ("no_close", "miss", "slip")


def make_slip(kind: str, rng: np.random.Generator, skill: str, params, half_xy) -> tuple[ExecutionPerturbation, str]:
    """(perturbation, cause in words) of a controller slip on a target of half footprint
    ``half_xy`` (m): ``no_close`` the jaws never close (pick_place only); ``miss`` the pad
    comes down 2-5 cm beyond the target's side (for push: beside it, across the heading), so the
    grasp closes on air or the push grazes; ``slip`` the object slips out 10-45 % of the way
    (pick_place only). ValueError for a kind the skill cannot have."""
    if kind not in SLIP_KINDS:
        raise ValueError(f"unknown slip {kind!r}; known: {', '.join(SLIP_KINDS)}")
    if kind in ("no_close", "slip") and skill != "pick_place":
        raise ValueError(f"a {kind} slip needs a grasp; {skill} has none")
    if kind == "no_close":
        return ExecutionPerturbation(close_gripper=False), "the gripper reached the object but never closed its jaws"
    if kind == "slip":
        at = float(rng.uniform(0.1, 0.45))
        return ExecutionPerturbation(slip_at=at), f"the object slipped out of the gripper {100 * at:.0f} % of the way"
    if skill == "push":
        u = np.array([-np.sin(params[0]), np.cos(params[0])]) * rng.choice([-1, 1])
    else:
        a = rng.uniform(-np.pi, np.pi)
        u = np.array([np.cos(a), np.sin(a)])
    reach = float(abs(u[0]) * half_xy[0] + abs(u[1]) * half_xy[1])
    off = u * (reach + rng.uniform(0.02, 0.05))
    return (ExecutionPerturbation(contact_offset=(float(off[0]), float(off[1]))),
            f"the gripper came down {100 * float(np.linalg.norm(off)):.0f} cm off the object's centre and missed it")


class SkillStopped(Exception):
    """Raised inside a backend when its :class:`SkillMonitor` asks to stop."""


def check_skill(name: str, params) -> tuple[float, ...]:
    """Validate a skill name and its parameters against the vocabulary box (SkillError)."""
    try:
        spec = skill_spec(name)
        spec.check(params)
    except ValueError as e:
        raise SkillError(str(e)) from None
    return tuple(float(p) for p in params)


def grasp_point(lower: np.ndarray, upper: np.ndarray, container_wall: float | None) -> np.ndarray:
    """Top center of a box, or the middle of the front (-x) rim of an open container."""
    c = 0.5 * (lower + upper)
    if container_wall is None:
        return np.array([c[0], c[1], upper[2]])
    return np.array([lower[0] + 0.5 * container_wall, c[1], upper[2]])


def push_start(lower: np.ndarray, upper: np.ndarray, direction: float, pad_half: np.ndarray,
               gap: float) -> tuple[np.ndarray, np.ndarray]:
    """(pad center before the push, unit heading) for pushing a box along ``direction``."""
    u = np.array([np.cos(direction), np.sin(direction), 0.0])
    c = 0.5 * (lower + upper)
    half = 0.5 * (upper - lower)
    reach = abs(u[0]) * half[0] + abs(u[1]) * half[1]
    pad_reach = abs(u[0]) * pad_half[0] + abs(u[1]) * pad_half[1]
    start = c - u * (reach + pad_reach + gap)
    # Pad bottom 5 mm above the support so it never scrapes the table.
    start[2] = lower[2] + pad_half[2] + 0.005
    return start, u


def smooth_path(points: list[np.ndarray], speed: float, dt: float) -> np.ndarray:
    """Positions every ``dt`` along straight segments, each with a smooth (cosine) speed profile."""
    out = []
    for a, b in zip(points[:-1], points[1:]):
        length = float(np.linalg.norm(b - a))
        n = max(2, int(np.ceil(1.5 * length / max(speed, 1e-6) / dt)))  # 1.5: peak/average of cosine profile
        s = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))[1:]
        out.append(a[None, :] + s[:, None] * (b - a)[None, :])
    if not out:
        return np.zeros((0, 3))
    return np.concatenate(out, axis=0)
