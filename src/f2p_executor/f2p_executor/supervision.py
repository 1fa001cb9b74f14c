"""What the task executor decides about a plan and its steps, without ROS (paper 000 §3-4).

* :func:`check_plan` — the executor's own symbolic check of a plan before it acts (used when no
  verifier such as Guardian is configured): every step names an object of the scene whose class
  meets the skill's target requirement, its parameters lie in the skill's box, and (optionally)
  the plan's own predicted p(goal) reaches a floor. It does not ask whether the model is right:
  that is what acting and comparing find out.
* :func:`step_mismatches` — failure detection (§4): the goal relations observed after step k
  against the ones the plan predicted (``f2p_failure.detection``); any mismatch is a failure
  event, even when the goal happens to hold (a symbolic-level failure, §1).
* :func:`goal_status` — which goal literals the observation shows holding.
* :func:`route_step` — what a step's outcome calls for, from the relation check and (when one
  is configured) the execution verifier's category (paper 002 §IV-D): an execution slip is
  retried, a mispredicted effect becomes a failure event for Fail2Progress.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from f2p_common.interfaces import GoalLiteral, Plan, RelationState, check_literal
from f2p_common.vocabulary import BINARY_RELATIONS, DRAWER_CLASSES, MOVABLE_CLASSES, UNARY_RELATIONS, skill
from f2p_failure.detection import find_mismatches

#: The classes that satisfy a skill's target requirement (``SkillSpec.target_requirement``).
REQUIREMENT_CLASSES = {"movable": MOVABLE_CLASSES, "is_drawer": DRAWER_CLASSES}


def check_plan(plan: Plan, labels: Sequence[str], min_goal_probability: float = 0.0) -> list[str]:
    """Problems that forbid acting on ``plan`` over objects with class ``labels`` (empty: fine)."""
    problems = []
    n = len(labels)
    if len(plan.object_ids) != n:
        problems.append(f"the plan ranges over {len(plan.object_ids)} objects, the scene has {n}")
    for k, ((name, target), params) in enumerate(zip(plan.skeleton, plan.parameters)):
        try:
            spec = skill(name)
        except ValueError as e:
            problems.append(f"step {k}: {e}")
            continue
        if not 0 <= target < n:
            problems.append(f"step {k}: {name} on object {target}, the scene has {n}")
            continue
        allowed = REQUIREMENT_CLASSES.get(spec.target_requirement, set())
        if labels[target] not in allowed:
            problems.append(f"step {k}: {name} needs a target that is {spec.target_requirement}; "
                            f"{plan.object_ids[target] if target < len(plan.object_ids) else target} is a {labels[target]}")
        try:
            spec.check(params)
        except ValueError as e:
            problems.append(f"step {k}: {e}")
    if len(plan.step_relations) != len(plan.skeleton):
        problems.append("the plan lacks the predicted relations of some step")
    if not math.isfinite(plan.goal_probability) or plan.goal_probability < min_goal_probability:
        problems.append(f"predicted p(goal) {plan.goal_probability:.3f} is below {min_goal_probability}")
    return problems


def _observed(state: RelationState) -> tuple[np.ndarray, np.ndarray]:
    """0/1 decisions of an observed state (a detector's probabilities read at 0.5)."""
    if np.isnan(state.unary).any() or np.isnan(state.binary).any():
        raise ValueError("the observed relation state leaves some relations unknown")
    return state.unary >= 0.5, state.binary >= 0.5


def step_mismatches(plan: Plan, k: int, observed: RelationState) -> list[dict]:
    """The goal literals whose prediction after step ``k`` differs from ``observed`` (§4)."""
    if observed.object_ids != plan.object_ids:
        raise ValueError(f"observed objects {observed.object_ids} are not the plan's {plan.object_ids}")
    unary, binary = _observed(observed)
    return find_mismatches(plan.step_relations[k], unary, binary, plan.goal)


def goal_status(goal: Sequence[GoalLiteral], state: RelationState) -> tuple[bool, list[GoalLiteral]]:
    """(every goal literal holds in ``state``, the literals that do not)."""
    unary, binary = _observed(state)
    unmet = []
    for lit in goal:
        pred, subj, obj = check_literal(lit, len(state.object_ids))
        holds = unary[subj, UNARY_RELATIONS.index(pred)] if obj is None else binary[subj, obj, BINARY_RELATIONS.index(pred)]
        if not holds:
            unmet.append((pred, subj, obj))
    return not unmet, unmet


#: Execution-verifier categories that are slips of the controller, not errors of the model:
#: the step is run again (replanned from what is observed), and no failure event is recorded.
SLIP_CATEGORIES = frozenset({"no_gripper_close", "imprecise_grasp", "no_progress"})
CONTINUE, RETRY, FAILURE = "continue", "retry", "failure"


def route_step(mismatches: Sequence[dict], verdict_category: str | None) -> str:
    """``continue`` (the step went as predicted), ``retry`` (the verifier saw an execution slip:
    the skill did not do what it was told, so the model is not to blame) or ``failure`` (the
    step did what it was told and the world did not follow the prediction: a failure event).
    ``verdict_category`` is None without an execution verifier, "success" when it passed the step."""
    if verdict_category is not None and verdict_category in SLIP_CATEGORIES:
        return RETRY
    if mismatches or (verdict_category is not None and verdict_category != "success"):
        return FAILURE
    return CONTINUE
