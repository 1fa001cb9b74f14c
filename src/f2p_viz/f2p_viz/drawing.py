"""What the stack shows in rviz, as :class:`~f2p_common.interfaces.Shape` lists (no ROS import;
``f2p_ros.conversions.shapes_to_msg`` makes the MarkerArray).

=================  =======================================================================
namespace          what
=================  =======================================================================
``objects``        each segmented object's oriented box, coloured by class (paper 000 §3 O_t)
``labels``         its id above it, with the unary relations that hold (``drawer_open``)
``relations``      the binary relations that hold (p >= 0.5), an edge subject -> object per
                   predicate of ``predicates`` (A.9), coloured by predicate, named mid-edge
``step``           the step being executed: its target's box in yellow and an arrow where
                   the skill takes it (pick_place: grasp point -> grasp point + (dx, dy, dz);
                   push: heading x distance; drawers: along the drawer box's -x, its front)
``mismatches``     after a failure (§4), each goal relation whose prediction the observation
                   contradicted: a red edge (a red ring for a unary one) and
                   "predicted p=.., observed yes/no"
=================  =======================================================================

:class:`ViewState` keeps the latest of each input and composes these namespaces: the rviz
``visualizer`` node and the browser viewer (``f2p-view``) draw the same thing.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from f2p_common.interfaces import OrientedBox, Plan, RelationState, SegmentedScene, Shape, StepProgress
from f2p_common.vocabulary import BINARY_RELATIONS, OBJECT_CLASSES, UNARY_RELATIONS
from f2p_failure.events import FailureEvent

#: Binary relations drawn by default: the ones a goal is made of (the spatial left / right /
#: front / behind hold between almost every pair and would hide the rest).
DEFAULT_PREDICATES: tuple[str, ...] = ("above", "inside", "in_contact", "boundary")

#: RGBA per object class (tab10), boxes drawn translucent.
CLASS_COLORS: dict[str, tuple[float, float, float, float]] = {
    label: (*rgb, 0.35) for label, rgb in zip(OBJECT_CLASSES, (
        (0.55, 0.34, 0.29), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
        (0.12, 0.47, 0.71), (0.58, 0.40, 0.74), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17)))}
PREDICATE_COLORS: dict[str, tuple[float, float, float, float]] = {
    p: (*rgb, 1.0) for p, rgb in zip(BINARY_RELATIONS, (
        (0.6, 0.6, 1.0), (0.6, 0.6, 1.0), (0.6, 1.0, 0.6), (0.6, 1.0, 0.6), (0.0, 0.8, 1.0), (0.0, 0.8, 1.0),
        (1.0, 1.0, 1.0), (1.0, 0.6, 0.0), (0.2, 1.0, 0.2)))}
WHITE, YELLOW, RED = (1.0, 1.0, 1.0, 1.0), (1.0, 0.9, 0.0, 1.0), (1.0, 0.1, 0.1, 1.0)
TEXT_HEIGHT, LINE_WIDTH = 0.03, 0.006


def _top(box: OrientedBox) -> np.ndarray:
    """Centre of the box's top face (its highest point along the frame's z)."""
    return box.center + np.array([0.0, 0.0, _half_height(box)])


def _half_height(box: OrientedBox) -> float:
    return float(0.5 * np.abs(_rotation(box.orientation)[2]) @ box.size)


def _rotation(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _boxes(scene: SegmentedScene) -> dict[str, OrientedBox]:
    return {o.id: o.box for o in scene.objects if o.box is not None}


def scene_shapes(scene: SegmentedScene, relations: RelationState | None = None) -> list[Shape]:
    """``objects`` and ``labels``: a box and a label per object; the label lists the unary
    relations of ``relations`` that hold, except ``movable`` and ``is_drawer`` (the class says)."""
    held: dict[str, list[str]] = {}
    if relations is not None:
        for i, oid in enumerate(relations.object_ids):
            held[oid] = [p for j, p in enumerate(UNARY_RELATIONS)
                         if p not in ("movable", "is_drawer") and relations.unary[i, j] >= 0.5]
    out = []
    for i, obj in enumerate(o for o in scene.objects if o.box is not None):
        out.append(Shape("box", "objects", i, CLASS_COLORS[obj.label], tuple(np.maximum(obj.box.size, 1e-3)),
                         center=obj.box.center, orientation=obj.box.orientation, frame_id=scene.frame_id))
        text = obj.id + "".join(f" ({p.replace('_', ' ')})" for p in held.get(obj.id, []))
        out.append(Shape("text", "labels", i, WHITE, (0.0, 0.0, TEXT_HEIGHT), text=text,
                         center=_top(obj.box) + [0, 0, TEXT_HEIGHT], frame_id=scene.frame_id))
    return out


def _edge(namespace: str, index: int, color, a: np.ndarray, b: np.ndarray, frame_id: str) -> Shape:
    return Shape("lines", namespace, index, color, (LINE_WIDTH, 0.0, 0.0), points=np.stack([a, b]), frame_id=frame_id)


def relation_shapes(relations: RelationState, scene: SegmentedScene,
                    predicates: Iterable[str] = DEFAULT_PREDICATES) -> list[Shape]:
    """``relations``: an edge from the subject's box centre to the object's per binary relation
    of ``predicates`` that holds (p >= 0.5), and its name at the middle. Objects the scene does
    not show are skipped."""
    boxes, out = _boxes(scene), []
    for pred in predicates:
        k = BINARY_RELATIONS.index(pred)
        for s, t in zip(*np.nonzero(relations.binary[:, :, k] >= 0.5)):
            a, b = boxes.get(relations.object_ids[s]), boxes.get(relations.object_ids[t])
            if a is None or b is None:
                continue
            n = len(out)
            out.append(_edge("relations", n, PREDICATE_COLORS[pred], a.center, b.center, scene.frame_id))
            out.append(Shape("text", "relations", n + 1, PREDICATE_COLORS[pred], (0.0, 0.0, 0.8 * TEXT_HEIGHT),
                             text=pred, center=0.5 * (a.center + b.center), frame_id=scene.frame_id))
    return out


def skill_motion(skill: str, parameters: Sequence[float], box: OrientedBox) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of where ``skill`` takes its target (the ``step`` arrow; module docstring)."""
    if skill == "pick_place":
        start = _top(box)
        return start, start + np.asarray(parameters[:3], np.float64)
    if skill == "push":
        direction, distance = parameters
        return box.center, box.center + distance * np.array([math.cos(direction), math.sin(direction), 0.0])
    front = -_rotation(box.orientation)[:, 0]            # the drawer slides along its box's x; out is -x
    sign = 1.0 if skill == "open_drawer" else -1.0
    return box.center, box.center + sign * parameters[0] * front


def step_shapes(plan: Plan, k: int, scene: SegmentedScene) -> list[Shape]:
    """``step``: plan step ``k``'s target box in yellow, the arrow of :func:`skill_motion` and
    "k+1/H skill"; empty if the scene does not show the target."""
    skill, target = plan.skeleton[k]
    box = _boxes(scene).get(plan.object_ids[target])
    if box is None:
        return []
    start, end = skill_motion(skill, plan.parameters[k], box)
    return [Shape("box", "step", 0, (*YELLOW[:3], 0.5), tuple(box.size + 0.01), center=box.center,
                  orientation=box.orientation, frame_id=scene.frame_id),
            Shape("arrow", "step", 1, YELLOW, (0.01, 0.02, 0.03), points=np.stack([start, end]), frame_id=scene.frame_id),
            Shape("text", "step", 2, YELLOW, (0.0, 0.0, TEXT_HEIGHT), text=f"{k + 1}/{len(plan.skeleton)} {skill}",
                  center=end + [0, 0, TEXT_HEIGHT], frame_id=scene.frame_id)]


def mismatch_shapes(mismatches: Sequence[dict], object_ids: Sequence[str], scene: SegmentedScene) -> list[Shape]:
    """``mismatches``: per mismatched relation {predicate, subject, object (index or None),
    predicted (p), observed (bool)} a red edge subject -> object, or a red box around the
    subject for a unary one, and "predicate: predicted p=0.93, observed no"."""
    boxes, out = _boxes(scene), []
    for m in mismatches:
        a = boxes.get(object_ids[m["subject"]])
        b = None if m["object"] is None else boxes.get(object_ids[m["object"]])
        if a is None or (m["object"] is not None and b is None):
            continue
        n = len(out)
        if b is None:
            out.append(Shape("box", "mismatches", n, (*RED[:3], 0.6), tuple(a.size + 0.02), center=a.center,
                             orientation=a.orientation, frame_id=scene.frame_id))
            where = _top(a) + [0, 0, 2.5 * TEXT_HEIGHT]
        else:
            out.append(_edge("mismatches", n, RED, a.center, b.center, scene.frame_id))
            where = 0.5 * (a.center + b.center) + [0, 0, TEXT_HEIGHT]
        observed = "yes" if m.get("observed", m["predicted"] < 0.5) else "no"
        out.append(Shape("text", "mismatches", n + 1, RED, (0.0, 0.0, TEXT_HEIGHT), center=where, frame_id=scene.frame_id,
                         text=f"{m['predicate']}: predicted p={m['predicted']:.2f}, observed {observed}"))
    return out


#: Task stages (``f2p_interfaces/TaskProgress`` names) during which the current step is drawn.
STEP_STAGES = ("execute", "verify_step")


class ViewState:
    """The latest scene, relations, plan, progress and failure, and what they draw (module
    docstring): the executing step while the executor executes or checks it, a failure's
    mismatched relations until the next task starts. Not thread-safe: callers lock."""

    def __init__(self, predicates: Sequence[str] = DEFAULT_PREDICATES):
        self.predicates = tuple(predicates)
        self.scene: SegmentedScene | None = None
        self.relations: RelationState | None = None
        self.plan: Plan | None = None
        self.progress: StepProgress | None = None
        self.failure: FailureEvent | None = None
        self._failure_goal = ""

    def on_progress(self, progress: StepProgress) -> None:
        if self.failure is not None and progress.goal_id != self._failure_goal:
            self.failure = None                     # a new task: the last one's failure is history
        self.progress = progress

    def on_failure(self, event: FailureEvent) -> None:
        self._failure_goal = self.progress.goal_id if self.progress is not None else ""
        self.failure = event

    def shapes(self) -> list[Shape]:
        """Every namespace's shapes (empty before the first scene)."""
        scene, relations, plan, progress = self.scene, self.relations, self.plan, self.progress
        if scene is None:
            return []
        out = scene_shapes(scene, relations if relations is not None and relations.stamp_ns == scene.stamp_ns else None)
        if relations is not None:
            out += relation_shapes(relations, scene, self.predicates)
        if (plan is not None and progress is not None and progress.stage in STEP_STAGES
                and progress.plan_id == plan.plan_id and progress.step_index < len(plan.skeleton)):
            out += step_shapes(plan, progress.step_index, scene)
        if self.failure is not None:
            out += mismatch_shapes(self.failure.mismatches, self.failure.segment_ids, scene)
        return out
