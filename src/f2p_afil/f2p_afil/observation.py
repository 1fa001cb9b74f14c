"""What a skill controller sees and commands (paper 003 §3.1: observation o_t, action chunk A_t).

A skill server (the simulated robot's, or a robot's) turns its state into a
:class:`SkillObservation` every control step; :func:`features` makes the policy's input vector
from it, :func:`check_observation` refuses one with NaNs or no target. Positions are metres in
the robot's base frame (REP-103: x forward, y left, z up); the controller is translation-only,
as f2p's skills are (a top-down pad; drawer handles along the slide axis).

Three points carry the skill's geometry, all computed by the skill server from the target's
segment box (the same geometry as the scripted primitives, ``f2p_sim.skills``):

``contact``    where the gripper's pad centre meets the target now: over the top centre of a
               solid object (the front rim of an open container) for ``pick_place``, behind the
               object on the far side from the heading and low above its support for ``push``,
               touching the front panel for the drawer skills.
``reference``  the target point that the skill moves: the grasp point, the box centre, the
               drawer's front panel centre; ``goal`` is where it must end (set at the start:
               reference + (dx, dy, dz), + distance along the heading, -/+ distance along the
               slide axis).

Actions: one row per control step of :data:`CONTROL_PERIOD`, ``(dx, dy, dz, grip)``; the first
three are the pad's motion in units of :data:`MAX_STEP` (clipped to [-1, 1]), ``grip`` > 0
closes the jaws, <= 0 opens them. A policy predicts :data:`CHUNK` rows and the controller
executes the first :data:`EXECUTE` before it looks again (receding horizon).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from f2p_common.vocabulary import PARAM_DIM, SKILLS, skill as skill_spec

#: Seconds per control step (the rate a robot's arm controller accepts Cartesian steps).
CONTROL_PERIOD = 0.02
#: Metres the pad moves at most per control step (0.5 m/s).
MAX_STEP = 0.01
#: Actions predicted per policy call, and executed before the next call.
CHUNK = 8
EXECUTE = 4
ACTION_DIM = 4
#: Metres per feature unit for positions (objects and motions of a few cm to a metre).
POSITION_SCALE = 0.1
#: The skills AFIL controls, in vocabulary order (the one-hot of the features).
SKILL_NAMES: tuple[str, ...] = tuple(SKILLS)


class ObservationError(ValueError):
    """An observation a controller must not act on (non-finite values, no target, bad skill)."""


@dataclass(frozen=True)
class SkillObservation:
    """One control step's view of a skill (module docstring for the points).

    gripper      (3,) pad centre.
    closed       the jaws are commanded closed.
    holding      the jaws hold something (a closed gripper that did not close fully).
    loaded       what the gripper holds touches something else (a wrist force/torque sensor
                 feels the support take the weight): the moment to release a placement.
    target_lower, target_upper  (3,) the target's segment box now.
    transfer_z   height the pad must reach before carrying something sideways (clears every
                 object on the way by the skill's clearance).
    heading      (2,) unit xy direction of a push or of a drawer's opening motion; zeros for
                 pick_place.
    """

    skill: str
    params: tuple[float, ...]
    gripper: np.ndarray
    closed: bool
    holding: bool
    loaded: bool
    target_lower: np.ndarray
    target_upper: np.ndarray
    contact: np.ndarray
    reference: np.ndarray
    goal: np.ndarray
    transfer_z: float
    heading: np.ndarray


def check_observation(obs: SkillObservation) -> None:
    """Raise :class:`ObservationError` unless ``obs`` is usable: a known skill with parameters
    inside its box, a target box, and finite numbers everywhere."""
    try:
        spec = skill_spec(obs.skill)
        spec.check(obs.params)
    except ValueError as e:
        raise ObservationError(str(e)) from None
    for name in ("gripper", "target_lower", "target_upper", "contact", "reference", "goal", "heading"):
        value = getattr(obs, name)
        if value is None:
            raise ObservationError(f"observation has no {name} (is the target segment missing?)")
        v = np.asarray(value, dtype=np.float64)
        if v.shape != ((2,) if name == "heading" else (3,)):
            raise ObservationError(f"observation {name} has shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ObservationError(f"observation {name} is not finite: {v.tolist()} (lost the target in the cloud?)")
    if not np.isfinite(obs.transfer_z):
        raise ObservationError(f"observation transfer_z is not finite: {obs.transfer_z}")
    if np.any(np.asarray(obs.target_upper) < np.asarray(obs.target_lower)):
        raise ObservationError("observation target box has upper < lower")


#: Length of :func:`features`.
FEATURE_DIM = len(SKILL_NAMES) + PARAM_DIM + 3 * 5 + 1 + 3 + 2


def features(obs: SkillObservation) -> np.ndarray:
    """The policy's input (float32, :data:`FEATURE_DIM`): skill one-hot, parameters in [-1, 1]
    (the vocabulary's box normalisation, zero-padded), and in units of :data:`POSITION_SCALE`
    the vectors gripper→contact, reference→goal (the pad's remaining motion while it holds the
    target), gripper→goal, gripper→reference, the target's half size,
    the height to the transfer plane, then closed / holding / loaded and the heading.
    Checks the observation first (:class:`ObservationError`)."""
    check_observation(obs)
    spec = skill_spec(obs.skill)
    onehot = np.zeros(len(SKILL_NAMES))
    onehot[SKILL_NAMES.index(obs.skill)] = 1.0
    unit = np.zeros(PARAM_DIM)
    unit[:spec.dim] = spec.to_unit(obs.params)
    g = np.asarray(obs.gripper, dtype=np.float64)
    ref = np.asarray(obs.reference, dtype=np.float64)
    goal = np.asarray(obs.goal, dtype=np.float64)
    lo, hi = np.asarray(obs.target_lower, dtype=np.float64), np.asarray(obs.target_upper, dtype=np.float64)
    vectors = np.concatenate([np.asarray(obs.contact) - g, goal - ref, goal - g, ref - g, 0.5 * (hi - lo)]) / POSITION_SCALE
    flags = np.array([float(obs.closed), float(obs.holding), float(obs.loaded)])
    rest = np.array([(obs.transfer_z - g[2]) / POSITION_SCALE])
    return np.concatenate([onehot, unit, vectors, rest, flags, np.asarray(obs.heading, dtype=np.float64)]).astype(np.float32)


def actions_to_motion(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) actions -> ((n, 3) pad displacements in metres, (n,) close commands as bools).
    Non-finite actions raise ValueError (a controller never moves on NaN)."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != ACTION_DIM:
        raise ValueError(f"actions must be (n, {ACTION_DIM}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("actions are not finite")
    return np.clip(a[:, :3], -1.0, 1.0) * MAX_STEP, a[:, 3] > 0.0


def motion_to_actions(displacement: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Inverse of :func:`actions_to_motion` for a demonstrator: metres -> (n, 4) actions with
    grip +1 (close) / -1 (open)."""
    d = np.atleast_2d(np.asarray(displacement, dtype=np.float64))
    c = np.atleast_1d(np.asarray(close, dtype=bool))
    return np.concatenate([np.clip(d / MAX_STEP, -1.0, 1.0), np.where(c, 1.0, -1.0)[:, None]], axis=1)
