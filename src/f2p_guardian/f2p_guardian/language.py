"""The words of verification: task instructions from goal literals, subtask texts from skill
calls — what a plan or a step looks like to a vision-language verifier (paper 002 §IV-A: the
instruction, the plan or subtask, the images).

Directions are the robot's (REP-103: +x forward, away from the robot; +y left), distances in
metres. A goal literal is ``(predicate, subject id, object id | None)``.
"""
from __future__ import annotations

import math
from typing import Sequence

from f2p_common.interfaces import SkillCall
from f2p_common.vocabulary import is_unary

from .world import RECEPTACLE_CLASSES, SceneFacts, predict_step

_PHRASE = {
    "inside": "{s} inside {o}", "above": "{s} on {o}", "below": "{s} under {o}", "left": "{s} left of {o}",
    "right": "{s} right of {o}", "front": "{s} in front of {o}", "behind": "{s} behind {o}",
    "in_contact": "{s} touching {o}", "boundary": "{s} at the edge of {o}",
    "movable": "{s} movable", "is_drawer": "{s} a drawer", "drawer_open": "{s} open",
}


def check_goal(goal: Sequence[tuple], object_ids: Sequence[str]) -> list[tuple]:
    """Goal literals over known ids, arity checked; ValueError naming the first bad one."""
    known, out = set(object_ids), []
    for lit in goal:
        if len(lit) != 3:
            raise ValueError(f"goal literal {lit!r} is not (predicate, subject, object|None)")
        pred, subj, obj = lit
        if is_unary(pred) != (obj is None):
            raise ValueError(f"goal literal {lit!r}: {pred!r} takes {'one object' if obj is None else 'two objects'}")
        for o in (subj, obj):
            if o is not None and o not in known:
                raise ValueError(f"goal literal {lit!r} names unknown object {o!r}")
        out.append((pred, subj, obj))
    return out


def literal_text(lit: tuple) -> str:
    pred, subj, obj = lit
    return _PHRASE[pred].format(s=subj, o=obj)


def describe_goal(goal: Sequence[tuple]) -> str:
    """"Make these hold: item_0 inside container; container on table_b." """
    return "Make these hold: " + "; ".join(literal_text(lit) for lit in goal) + "."


def _heading(dx: float, dy: float) -> str:
    words = []
    if abs(dx) >= 0.02:
        words.append(f"{abs(dx):.2f} m {'forward' if dx > 0 else 'back'}")
    if abs(dy) >= 0.02:
        words.append(f"{abs(dy):.2f} m {'left' if dy > 0 else 'right'}")
    return " and ".join(words) or "in place"


def describe_step(call: SkillCall, facts: SceneFacts | None = None) -> str:
    """The subtask text of ``call``: its signature, then what it does in words (with ``facts``,
    where the target ends up by the skill library's effects)."""
    target = call.target_ids[0]
    args = ", ".join(f"{v:+.2f}" for v in call.parameters)
    head = f"{call.skill}({target}, {args})"
    cls = ""
    outcome = None
    if facts is not None and target in facts.object_ids:
        cls = f" ({facts.classes[facts.index(target)]})"
        outcome = predict_step(facts, call)
    if call.skill == "pick_place":
        dx, dy, _ = call.parameters
        where = ""
        if outcome is not None and outcome.support:
            into = outcome.support != "floor" and facts.classes[facts.index(outcome.support)] in RECEPTACLE_CLASSES
            where = f", {'into' if into else 'onto'} {outcome.support}"
        return f"{head}: pick up {target}{cls} and put it down {_heading(dx, dy)}{where}"
    if call.skill == "push":
        direction, distance = call.parameters
        return f"{head}: push {target}{cls} {_heading(distance * math.cos(direction), distance * math.sin(direction))}"
    (distance,) = call.parameters
    verb = "pull out" if call.skill == "open_drawer" else "push in"
    return f"{head}: {verb} {target}{cls} by {distance:.2f} m"


def describe_plan(calls: Sequence[SkillCall], facts: SceneFacts | None = None) -> list[str]:
    """The subtask text of every step, each described on the state its predecessors leave."""
    out = []
    for call in calls:
        out.append(describe_step(call, facts))
        if facts is not None and call.target_ids[0] in facts.object_ids:
            outcome = predict_step(facts, call)
            facts = outcome.after if outcome.after is not None else facts
    return out
