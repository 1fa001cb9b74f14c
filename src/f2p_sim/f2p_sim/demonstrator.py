"""The demonstrator of AFIL's skills: the scripted primitives of :mod:`f2p_sim.mujoco_backend`
(pick-and-place through a hover, descend, close, lift to the transfer height, carry, descend
until the support takes the load, release, retreat; push from behind along the heading;
drawer handle grasp and pull) written as a closed-loop controller over the same
:class:`f2p_afil.observation.SkillObservation` a policy sees.

Closed loop is what makes it a corrector as well (paper 003 §3.2, "failure trajectories ...
corrected via motion-planner-based replanning"): started from any state a policy left — jaws
closed on air, an object dropped beside its goal, a push gone astray — it opens, goes back to
the target and finishes the skill from there. :func:`demonstrate` returns one action per call.
"""
from __future__ import annotations

import numpy as np

from f2p_afil.observation import MAX_STEP, SkillObservation, motion_to_actions

#: Metres of alignment the demonstrator accepts before it closes or descends.
ALIGN = 0.003
#: ... and of the final approach to a touch (the jaws' contact test allows 3 mm).
TOUCH = 0.001
HOVER = 0.05
#: Half width of the gripper pad (m; world config gripper.pad_size).
PAD_HALF = 0.015


def _toward(g: np.ndarray, target: np.ndarray, speed: float = 1.0) -> np.ndarray:
    d = np.asarray(target, dtype=np.float64) - g
    n = float(np.linalg.norm(d))
    step = speed * MAX_STEP
    return d if n <= step else d * (step / n)


def _act(d, close: bool) -> np.ndarray:
    return motion_to_actions(np.asarray(d)[None], np.array([close]))[0]


def _pick_place(o: SkillObservation) -> np.ndarray:
    g = np.asarray(o.gripper)
    ref, goal, contact = np.asarray(o.reference), np.asarray(o.goal), np.asarray(o.contact)
    if o.holding:
        carry = goal - ref
        if o.loaded and np.linalg.norm(carry[:2]) < 0.01:
            return _act(np.zeros(3), False)                       # placed: release
        if np.linalg.norm(carry[:2]) > ALIGN:
            if g[2] < o.transfer_z - 0.005 and np.linalg.norm(carry[:2]) > 0.01:
                return _act(_toward(g, [g[0], g[1], o.transfer_z]), True)   # lift first
            return _act(_toward(g, g + [carry[0], carry[1], 0.0]), True)
        return _act(_toward(g, g + [0.0, 0.0, -1.0], 0.6), True)           # descend onto the support
    if o.closed:                                                  # closed on air, or let go: open, rise
        return _act([0.0, 0.0, MAX_STEP], False)
    if np.linalg.norm((goal - ref)[:2]) < 0.015 and abs(goal[2] - ref[2]) < 0.05:
        # Done: retreat above the object, then hold still.
        if g[2] < contact[2] + HOVER * 0.6:
            return _act([0.0, 0.0, MAX_STEP], False)
        return _act(np.zeros(3), False)
    e = contact - g
    if np.linalg.norm(e[:2]) > ALIGN:
        hover = contact[2] + 0.03
        if g[2] < hover - 0.005 and np.linalg.norm(e[:2]) > 0.01:
            return _act(_toward(g, [g[0], g[1], hover]), False)
        return _act(_toward(g, [contact[0], contact[1], max(g[2], hover) if np.linalg.norm(e[:2]) > 0.01 else g[2]]), False)
    if e[2] < -TOUCH:
        return _act(_toward(g, contact, 0.6), False)
    return _act(np.zeros(3), True)                                # aligned and touching: close


def _push(o: SkillObservation) -> np.ndarray:
    g = np.asarray(o.gripper)
    ref, goal, contact = np.asarray(o.reference), np.asarray(o.goal), np.asarray(o.contact)
    u = np.array([o.heading[0], o.heading[1], 0.0])
    remaining = float(np.linalg.norm((goal - ref)[:2]))
    if remaining < 0.006 or float((goal - ref) @ u) < -0.01:     # there, or past it (a push cannot pull)
        if g[2] < contact[2] + HOVER * 0.6:
            return _act([0.0, 0.0, MAX_STEP], False)
        return _act(np.zeros(3), False)
    # Push from behind the object toward its goal (not blindly along the heading: a box
    # pushed on a face drifts and turns), the pad following the object sideways.
    to_goal = (goal - ref)[:2]
    w = to_goal / max(float(np.linalg.norm(to_goal)), 1e-9)
    rel = (g - ref)[:2]
    along = float(rel @ w)
    lateral = rel - along * w
    if np.linalg.norm(lateral) < 0.02 and abs(g[2] - contact[2]) < 0.008 and along < 0:
        step = w * min(0.6 * MAX_STEP, remaining + 0.002) - 0.5 * lateral
        return _act([step[0], step[1], 0.0], False)
    half = 0.5 * (np.asarray(o.target_upper) - np.asarray(o.target_lower))
    reach = abs(w[0]) * (half[0] + PAD_HALF) + abs(w[1]) * (half[1] + PAD_HALF) + 0.003
    pre = np.array([ref[0] - w[0] * reach, ref[1] - w[1] * reach, contact[2]])
    e = pre - g
    if np.linalg.norm(e[:2]) > ALIGN:
        hover = contact[2] + HOVER
        if g[2] < hover - 0.005 and np.linalg.norm(e[:2]) > 0.01:
            return _act(_toward(g, [g[0], g[1], hover]), False)
        return _act(_toward(g, [pre[0], pre[1], g[2] if np.linalg.norm(e[:2]) <= 0.01 else max(g[2], hover)]), False)
    return _act(_toward(g, pre, 0.6), False)


def _drawer(o: SkillObservation) -> np.ndarray:
    g = np.asarray(o.gripper)
    ref, goal, contact = np.asarray(o.reference), np.asarray(o.goal), np.asarray(o.contact)
    h = np.array([o.heading[0], o.heading[1], 0.0])               # the drawer's commanded motion
    back = h if o.skill == "open_drawer" else -h                  # out of the cabinet, toward the robot
    remaining = float((goal - ref) @ h)
    if o.holding:
        if remaining > 0.003:
            return _act(h * min(0.5 * MAX_STEP, remaining), True)
        return _act(np.zeros(3), False)                           # there: let go
    if o.closed:
        return _act(np.zeros(3), False)                           # closed on air: open first
    if remaining <= 0.003:                                        # done: back off, then hold still
        if float((g - ref) @ back) < 0.05:
            return _act(back * MAX_STEP, False)
        return _act(np.zeros(3), False)
    e = contact - g
    if np.linalg.norm(e) > TOUCH:
        return _act(_toward(g, contact, 0.6), False)
    return _act(np.zeros(3), True)


_BY_SKILL = {"pick_place": _pick_place, "push": _push, "open_drawer": _drawer, "close_drawer": _drawer}


def demonstrate(obs: SkillObservation) -> np.ndarray:
    """The demonstrator's next action (4,) for ``obs`` (module docstring)."""
    return _BY_SKILL[obs.skill](obs)
