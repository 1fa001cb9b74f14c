"""The symbolic verifier: plans and steps checked against the skill library's preconditions and
effects (:mod:`f2p_guardian.world`) and the goal literals, with the reasoning written out.

Plan (paper 002 eq. 1). The plan is run on the boxes step by step; it is correct when no step
is refused, nothing falls and every goal literal holds at the end. A wrong plan is explained
by the smallest repair that makes it correct, tried in this order:
  wrong_order             another order of the same steps works;
  contradictory_subtasks  a step moves back what an earlier step moved, or leaving out a step
                          on an already moved object makes the plan work;
  wrong_object            the plan works with one step's target replaced by another movable
                          object, or a step moves an object whose goal relations held before;
  missing_subtask         a goal literal's movable subject is never moved;
  wrong_placement         otherwise: the right objects, put in the wrong place.
Order, missing and contradictory steps are exact here (the issue's "nearly exact"); placements
are as good as the box effects.

Execution (eq. 2). The step's predicted effect on the boxes before is compared with the boxes
after: the step succeeded when its target ends within ``position_tolerance`` of the predicted
place, resting on or in the predicted support, with what it carried moved along. A failure is named from what moved:
nothing at all (no_progress when before and after are identical, else the gripper never
closed on — or the push missed — the target), another object instead of the target
(wrong_object), the target short of its goal (imprecise_grasp: it slipped) or elsewhere
(wrong_placement).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from f2p_common.interfaces import SkillCall
from f2p_common.vocabulary import MOVABLE_CLASSES, PLACEMENT_MARGIN

from .language import describe_step, literal_text
from .taxonomy import EXECUTION, PLAN, SUCCESS, Verdict
from .verifier import ExecutionQuery, PlanQuery, Verifier, check_execution_query, check_plan_query
from .world import SceneFacts, StepOutcome, predict_step


@dataclass(frozen=True)
class SymbolicConfig:
    """position_tolerance: m between the observed and predicted place of a step's target;
    still: m below which an object did not move; max_permutations: plans up to this many steps
    are tried in every order (6 steps: 720 orders)."""

    position_tolerance: float = 0.06
    still: float = 0.01
    max_reorder_steps: int = 5


def goal_unmet(facts: SceneFacts, goal: Sequence[tuple]) -> list[tuple]:
    rel = facts.relations()
    return [lit for lit in goal if not rel.holds(lit[0], facts.index(lit[1]),
                                                  None if lit[2] is None else facts.index(lit[2]))]


def run_plan(facts: SceneFacts, plan: Sequence[SkillCall]) -> tuple[list[StepOutcome], SceneFacts]:
    """Outcomes of every step (a refused one leaves the scene unchanged) and the final scene."""
    outcomes = []
    for call in plan:
        out = predict_step(facts, call)
        outcomes.append(out)
        if out.after is not None:
            facts = out.after
    return outcomes, facts


def _works(facts: SceneFacts, plan: Sequence[SkillCall], goal) -> bool:
    outcomes, final = run_plan(facts, plan)
    return all(o.ok for o in outcomes) and not goal_unmet(final, goal)


def _where(facts: SceneFacts, i: int) -> str:
    c = facts.center[i]
    return f"({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f})"


class SymbolicVerifier(Verifier):
    name = "symbolic"

    def __init__(self, cfg: SymbolicConfig | None = None):
        self.cfg = cfg or SymbolicConfig()

    def verify(self, mode: str, query: PlanQuery | ExecutionQuery) -> Verdict:
        return self._verify_plan(query) if mode == PLAN else self._verify_execution(query)

    # ------------------------------------------------------------------ plans
    def _verify_plan(self, query: PlanQuery) -> Verdict:
        t0 = time.perf_counter()
        check_plan_query(query, need_scene=True)
        facts, plan, goal = query.scene, list(query.plan), [tuple(g) for g in query.goal]
        outcomes, final = run_plan(facts, plan)
        lines, state = [], facts
        for k, (call, out) in enumerate(zip(plan, outcomes)):
            t = state.index(call.target_ids[0])
            line = f"Step {k + 1}: {describe_step(call, state)}. {call.target_ids[0]} is at {_where(state, t)}"
            if out.after is None:
                line += f"; refused: {out.refused}"
            else:
                if out.riders:
                    line += f", holding {', '.join(out.riders)}"
                line += f"; it ends on {out.support}" + (" and falls or tips: its centre is not a quarter "
                                                            f"of its size plus {PLACEMENT_MARGIN * 100:.0f} cm inside "
                                                            "that surface's edge" if out.fell else "")
                if out.row:
                    line += f", pushing {', '.join(out.row)} along"
                state = out.after
            lines.append(line + ".")
        unmet = goal_unmet(final, goal)
        ok = all(o.ok for o in outcomes) and not unmet
        if ok:
            lines.append(f"After the plan every goal relation holds ({len(goal)}): the plan is correct.")
            return self._verdict(PLAN, SUCCESS, 0.95, lines, t0)
        if unmet:
            lines.append("After the plan " + "; ".join(literal_text(u) for u in unmet) + " does not hold.")
        category, why = self._explain_plan(facts, plan, outcomes, goal, unmet)
        lines.append(why)
        return self._verdict(PLAN, category, 0.9, lines, t0)

    def _explain_plan(self, facts, plan, outcomes, goal, unmet) -> tuple[str, str]:
        n = len(plan)
        if 1 < n <= self.cfg.max_reorder_steps:
            for order in itertools.permutations(range(n)):
                if list(order) != list(range(n)) and _works(facts, [plan[i] for i in order], goal):
                    return "wrong_order", (f"The same steps in the order {', '.join(str(i + 1) for i in order)} "
                                           f"would achieve the goal: the order is wrong.")
        # A later step on an object an earlier step moved, bringing it back or being superfluous.
        befores, state = [], facts
        for o in outcomes:
            befores.append(state)
            state = o.after if o.after is not None else state
        afters = befores[1:] + [state]
        for j in range(n):
            for i in range(j):
                if plan[i].target_ids != plan[j].target_ids or outcomes[j].after is None:
                    continue
                t = facts.index(plan[i].target_ids[0])
                moved = np.linalg.norm(afters[i].center[t] - befores[i].center[t])
                back = np.linalg.norm(afters[j].center[t] - befores[i].center[t])
                if moved > self.cfg.still and back < self.cfg.position_tolerance:
                    return "contradictory_subtasks", (f"Step {j + 1} brings {plan[j].target_ids[0]} back where "
                                                      f"step {i + 1} took it from: the steps contradict each other.")
                if _works(facts, plan[:j] + plan[j + 1:], goal):
                    return "contradictory_subtasks", (f"Step {j + 1} moves {plan[j].target_ids[0]} again after step "
                                                      f"{i + 1} did, undoing it: the steps contradict each other.")
        movable = [o for o, c in zip(facts.object_ids, facts.classes) if c in MOVABLE_CLASSES]
        for k, call in enumerate(plan):
            for other in movable:
                if other == call.target_ids[0]:
                    continue
                fixed = plan[:k] + [replace(call, target_ids=(other,))] + plan[k + 1:]
                if _works(facts, fixed, goal):
                    return "wrong_object", (f"Step {k + 1} acts on {call.target_ids[0]}; with {other} instead the "
                                            f"plan would achieve the goal: the wrong object is manipulated.")
        held_before = set(goal) - set(goal_unmet(facts, goal))
        moved_ids = set()
        for call, o in zip(plan, outcomes):
            if o.after is not None:
                moved_ids.update([call.target_ids[0], *o.riders, *o.row])
        for u in unmet:
            if u in held_before and u[1] in {c.target_ids[0] for c in plan}:
                return "wrong_object", (f"{literal_text(u)} held before the plan, and a step moves {u[1]}: the "
                                        f"wrong object is manipulated.")
        for u in unmet:
            subject = u[1]
            if facts.classes[facts.index(subject)] in MOVABLE_CLASSES and subject not in moved_ids:
                return "missing_subtask", (f"No step moves {subject}, yet {literal_text(u)} needs it: a subtask is "
                                           f"missing.")
        refused = [k for k, o in enumerate(outcomes) if o.after is None]
        if refused:
            return "wrong_order", f"Step {refused[0] + 1} cannot run where it stands: {outcomes[refused[0]].refused}."
        return "wrong_placement", "The right objects are moved, but not to where the goal needs them: a placement is wrong."

    # ------------------------------------------------------------------ steps
    def _verify_execution(self, query: ExecutionQuery) -> Verdict:
        t0 = time.perf_counter()
        check_execution_query(query, need_scene=True)
        before, after, call = query.before, query.after, query.step
        t = before.index(call.target_ids[0])
        lines = [f"Subtask: {describe_step(call, before)}.",
                 f"Before: {call.target_ids[0]} ({before.classes[t]}) is at {_where(before, t)}; after: at "
                 f"{_where(after, t)}."]
        disp = np.linalg.norm(after.center - before.center, axis=1)
        predicted = predict_step(before, call)
        if float(np.max(np.abs(after.lower - before.lower), initial=0.0)) == 0.0 and \
                float(np.max(np.abs(after.upper - before.upper), initial=0.0)) == 0.0:
            lines.append("Nothing changed between before and after: no progress.")
            return self._verdict(EXECUTION, "no_progress", 0.95, lines, t0)
        if predicted.after is None:
            lines.append(f"The subtask cannot run here ({predicted.refused}), yet the scene changed.")
            return self._verdict(EXECUTION, "instruction_mismatch", 0.6, lines, t0)
        expected = predicted.after
        err = float(np.linalg.norm(after.center[t] - expected.center[t]))
        same = self._rests_as_predicted(before, after, t, predicted)
        if err <= self.cfg.position_tolerance and same and not predicted.fell:
            lines.append(f"{call.target_ids[0]} ended {err:.2f} m from where the subtask puts it, on "
                         f"{predicted.support}: the subtask succeeded.")
            return self._verdict(EXECUTION, SUCCESS, 0.9, lines, t0)
        if disp.max(initial=0.0) < self.cfg.still:
            cat = "no_gripper_close" if call.skill == "pick_place" else "imprecise_grasp"
            lines.append(f"No object moved by {self.cfg.still:.2f} m: the gripper "
                         + ("never closed on it." if cat == "no_gripper_close" else "missed it."))
            return self._verdict(EXECUTION, cat, 0.8, lines, t0)
        if disp[t] < self.cfg.still:
            others = [before.object_ids[i] for i in np.nonzero(disp >= self.cfg.still)[0]]
            lines.append(f"{call.target_ids[0]} did not move but {', '.join(others)} did: the wrong object was "
                         f"manipulated.")
            return self._verdict(EXECUTION, "wrong_object", 0.8, lines, t0)
        want = expected.center[t] - before.center[t]
        got = after.center[t] - before.center[t]
        progress = float(got[:2] @ want[:2] / max(float(want[:2] @ want[:2]), 1e-9))
        if progress < 0.75:
            lines.append(f"{call.target_ids[0]} moved only {100 * progress:.0f} % of the way: it slipped or was "
                         f"pushed off-centre.")
            return self._verdict(EXECUTION, "imprecise_grasp", 0.7, lines, t0)
        lines.append(f"{call.target_ids[0]} ended {err:.2f} m from where the subtask puts it"
                     + ("" if same else ", not on / in what it should be") + ": the placement is wrong.")
        return self._verdict(EXECUTION, "wrong_placement", 0.7, lines, t0)

    def _rests_as_predicted(self, before: SceneFacts, after: SceneFacts, t: int, predicted: StepOutcome) -> bool:
        """Whether the target rests on (or in) the support the effects predict, and what it
        carried moved with it (within ``position_tolerance``): the placement relations that matter,
        read so that a centimetre of box error does not flip them."""
        rel = after.relations()
        if predicted.support == "floor":
            on = after.lower[t, 2] < self.cfg.still
        else:
            s = after.index(predicted.support)
            on = rel.holds("above", t, s) or rel.holds("inside", t, s)
        moved = after.center - before.center
        return bool(on) and all(np.linalg.norm(moved[before.index(r)] - moved[t]) <= self.cfg.position_tolerance
                                for r in predicted.riders)

    def _verdict(self, mode: str, category: str, confidence: float, lines: list[str], t0: float) -> Verdict:
        return Verdict(mode, category == SUCCESS, category, confidence, " ".join(lines), self.name,
                       time.perf_counter() - t0)
