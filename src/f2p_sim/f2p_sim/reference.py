"""Scripted reference solutions of the three tasks (paper 000 §6, A.2), from ground truth.

A reference solution reads the simulator's true object boxes (privileged information no
robot has) and solves a task instance with the same skill library, parameter boxes and
contact physics the planner uses (``f2p_sim.skills``, executed by the backend). It is a
ceiling, not a method: when the reference solves an instance, a planned attempt that
fails there fails because of the model, not because the task cannot be done.
``benchmarks/task_feasibility.py`` runs it on the benchmark's evaluation scenes.

``transport`` / ``organize``  carry every container (in goal order) by the furniture's
    ``carry_shift`` (the offset from ``table_a``'s centre to ``table_b``'s in the paper
    layout), released just above table_b (``dz`` + ``CARRY_DZ``): a translation keeps the
    cups' left-to-right order, and the contents ride along through contact and friction alone.
``packing``   one push of the shelf's first item (lowest y) along +y closes every gap in
    the row and brings the last item to ``EDGE_MARGIN`` from the shelf's +y end; pushes of
    the first item repeat (at most ``PACK_PUSHES`` in all) while the row still has a gap.
    The new item is then placed on the shelf board against the row's -y end: that end faces
    ``table_a``, so the placement fits the pick_place box (placing at the +y end would need
    |dy| > 0.8 m at 7 objects). A pushed row can buckle (boxes yaw and slide aside): the
    reference then fails, and that share is part of what it measures.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import SimBackend
from .scene import inner_footprint
from .skills import SkillError
from .tasks import Task

#: pick_place dz for carried containers: released as soon as they touch table_b.
CARRY_DZ = 0.01
#: m left between the pushed row's last item and the shelf's open +y end.
EDGE_MARGIN = 0.004
#: m pushed past the measured gap so the row comes into contact.
PUSH_EXTRA = 0.003
#: a row with a gap above this (m) is pushed again.
ROW_GAP = 0.001
PACK_PUSHES = 3
#: m between the placed new item and the row, and its drop height above the board.
PLACE_CLEARANCE = 0.005
PLACE_DROP = 0.01


class ReferenceSolutionError(RuntimeError):
    """The reference cannot be computed for this instance (e.g. a step outside its skill's box)."""


def _step(backend: SimBackend, steps: list, name: str, target: int, params) -> None:
    params = [float(v) for v in params]
    try:   # the backend checks the parameters against the skill's box before anything moves
        backend.execute_skill(name, target, params)
    except SkillError as e:
        raise ReferenceSolutionError(f"{name} on {backend.segments[target].name}: {e}") from None
    steps.append((name, int(target), params))


def _row_gaps(backend: SimBackend, row: list[int]) -> float:
    """Sum of the gaps (m) between consecutive items of ``row`` along y (overlaps count 0)."""
    st = backend.segment_state()
    return float(sum(max(st.box_lower[b, 1] - st.box_upper[a, 1], 0.0) for a, b in zip(row, row[1:])))


def solve(task: Task, backend: SimBackend) -> list[tuple[str, int, list[float]]]:
    """Load ``task`` on ``backend`` and execute its reference solution; returns the steps run
    as (skill, target index, parameters). Score the outcome with ``task.success(backend)``.
    Raises :class:`ReferenceSolutionError` when a step cannot be issued."""
    backend.load(task.scene)
    names = [s.name for s in backend.segments]
    spec = {o.name: o for o in task.scene.objects}
    steps: list = []
    if task.kind in ("transport", "organize"):
        if task.furniture is not None:
            shift = task.furniture.carry_shift()
        else:   # a scene from elsewhere: table centre to table centre
            shift = (*(np.asarray(spec["table_b"].pos[:2]) - np.asarray(spec["table_a"].pos[:2])), 0.0)
        carried = [lit.subject for lit in task.goal if lit.predicate == "above" and lit.object == "table_b"]
        for name in carried:
            _step(backend, steps, "pick_place", names.index(name), [shift[0], shift[1], shift[2] + CARRY_DZ])
        return steps
    if task.kind == "packing":
        row = [names.index(n) for n in sorted((n for n in names if n.startswith("item_")), key=lambda n: int(n[5:]))]
        shelf, new = names.index("shelf"), names.index("new_item")
        for k in range(PACK_PUSHES):
            st = backend.segment_state()
            gaps = _row_gaps(backend, row)
            to_edge = max(float(st.box_upper[shelf, 1] - st.box_upper[row[-1], 1]) - EDGE_MARGIN, 0.0) if k == 0 else 0.0
            if k > 0 and gaps <= ROW_GAP:
                break
            _step(backend, steps, "push", row[0], [math.pi / 2, gaps + to_edge + PUSH_EXTRA])
        st = backend.segment_state()
        centre = 0.5 * (st.box_lower[new] + st.box_upper[new])
        half_y = 0.5 * float(st.box_upper[new, 1] - st.box_lower[new, 1])
        lo, hi = inner_footprint(spec["shelf"], backend.cfg)   # the compartment, back wall excluded
        target_x = 0.5 * float(lo[0] + hi[0])
        target_y = float(st.box_lower[row[0], 1]) - half_y - PLACE_CLEARANCE
        board = float(st.box_lower[row[0], 2])
        # pick_place moves the grasp point (the top centre of a box) by (dx, dy, dz): so does the box.
        _step(backend, steps, "pick_place", new,
              [target_x - centre[0], target_y - centre[1], board - float(st.box_lower[new, 2]) + PLACE_DROP])
        return steps
    raise ValueError(f"no reference solution for task {task.kind!r}")
