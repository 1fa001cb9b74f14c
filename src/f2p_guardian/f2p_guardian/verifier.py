"""One interface for every Guardian verifier (paper 002 §IV-A): a plan query (eq. 1: the
instruction, the plan, the initial views) and an execution query (eq. 2: the instruction, the
subtask, the views before and after) in, a :class:`~f2p_guardian.taxonomy.Verdict` out.

A query carries what every kind of verifier reads: the texts and images a vision-language
model looks at, and the scene as boxes (:class:`~f2p_guardian.world.SceneFacts`) with the goal
literals a symbolic checker reasons over. A verifier raises :class:`QueryError` (a ValueError)
for a query it cannot answer, saying why: the guardian node turns it into the service's error.
"""
from __future__ import annotations

import abc

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from f2p_common.backends import Registry
from f2p_common.interfaces import SkillCall

from .language import check_goal
from .taxonomy import EXECUTION, PLAN, Verdict
from .world import SceneFacts


class QueryError(ValueError):
    """A verification request that cannot be answered as asked."""


@dataclass
class PlanQuery:
    """Is ``plan`` correct for ``instruction``? ``scene``: the initial boxes; ``goal``: literals
    (predicate, subject id, object id | None) the instruction asks for; ``images``: one RGB
    (H, W, 3) uint8 image per camera view of the initial scene."""

    instruction: str
    plan: list[SkillCall]
    scene: SceneFacts | None = None
    goal: list[tuple] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)


@dataclass
class ExecutionQuery:
    """Did ``step`` succeed? ``before`` / ``after``: the boxes before and after it ran (the same
    objects); ``images_before`` / ``images_after``: one RGB image per view, each."""

    instruction: str
    step: SkillCall
    before: SceneFacts | None = None
    after: SceneFacts | None = None
    images_before: list[np.ndarray] = field(default_factory=list)
    images_after: list[np.ndarray] = field(default_factory=list)


def check_plan_query(q: PlanQuery, need_scene: bool) -> None:
    """QueryError for an empty plan, a step naming an object the scene lacks, a bad goal."""
    if not q.plan:
        raise QueryError("the plan is empty: there is nothing to verify")
    if need_scene and q.scene is None:
        raise QueryError("this verifier needs the scene's objects (boxes) with the plan")
    if q.scene is not None:
        for k, call in enumerate(q.plan):
            for t in call.target_ids:
                if t not in q.scene.object_ids:
                    raise QueryError(f"step {k + 1} ({call.skill}) names unknown object {t!r}; the scene has "
                                     f"{', '.join(q.scene.object_ids)}")
        try:
            check_goal(q.goal, q.scene.object_ids)
        except ValueError as e:
            raise QueryError(str(e)) from None


def check_execution_query(q: ExecutionQuery, need_scene: bool) -> None:
    """QueryError unless before and after name the same objects, the step's among them."""
    if need_scene and (q.before is None or q.after is None):
        raise QueryError("this verifier needs the scene's objects (boxes) before and after the step")
    if q.before is not None and q.after is not None:
        if q.before.object_ids != q.after.object_ids:
            raise QueryError(f"before and after differ in objects: {list(q.before.object_ids)} vs "
                             f"{list(q.after.object_ids)}")
        for t in q.step.target_ids:
            if t not in q.before.object_ids:
                raise QueryError(f"the step ({q.step.skill}) names unknown object {t!r}; the scene has "
                                 f"{', '.join(q.before.object_ids)}")


def check_views(images: Sequence[np.ndarray], views: int, height: int, width: int, what: str) -> None:
    """QueryError unless ``images`` holds ``views`` RGB uint8 images of ``height`` x ``width``."""
    if len(images) != views:
        raise QueryError(f"{what}: {len(images)} camera view(s), the verifier takes {views}")
    for k, im in enumerate(images):
        im = np.asarray(im)
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise QueryError(f"{what}: view {k} is not an RGB uint8 image (shape {im.shape}, {im.dtype})")
        if im.shape[:2] != (height, width):
            raise QueryError(f"{what}: view {k} is {im.shape[1]}x{im.shape[0]}, the verifier takes {width}x{height}")


class Verifier(abc.ABC):
    """A plan and execution verifier; ``name`` is its backend name. It implements :meth:`verify`
    for both questions (``mode`` "plan" with a PlanQuery, "execution" with an ExecutionQuery)."""

    name: str = ""

    def verify_plan(self, query: PlanQuery) -> Verdict:
        return self.verify(PLAN, query)

    def verify_execution(self, query: ExecutionQuery) -> Verdict:
        return self.verify(EXECUTION, query)

    @abc.abstractmethod
    def verify(self, mode: str, query: PlanQuery | ExecutionQuery) -> Verdict: ...


#: Verifiers by name (the guardian node's ``backend`` parameter), each built from the node's
#: ``model`` / ``base_model`` / ``strategy`` options it uses and imported only when chosen.
VERIFIERS = Registry("verifier", {"symbolic": "f2p_guardian.symbolic:SymbolicVerifier",
                                  "vlm": "f2p_guardian.vlm:load_vlm",
                                  "baseline": "f2p_guardian.baseline:load_baseline"})
