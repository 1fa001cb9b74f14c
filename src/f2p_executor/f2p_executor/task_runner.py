"""The task loop without ROS: observe → plan → verify → execute → compare → record → replan
(paper 000 §3-4, with Guardian's plan and step verification of paper 002 §IV-D).

:class:`TaskRunner` holds the state machine and its bounds; what it talks to is injected, so it
runs the same over DDS (``task_executor_node`` adapts services and actions to these protocols)
and over in-memory fakes in tests:

==============  ==========================================================================
``observer``    :class:`Observer`: the first observation (scene + relations) received after
                a moment and stamped no earlier than a time
``planner``     :class:`Planner`: a plan for the goal from an observation, away from the plans
                refused so far
``skills``      :class:`Skills`: runs one step of a plan; says when it ended
``verifier``    :class:`Verifier`: problems with a plan before acting (empty: go), and a
                verdict on a step after acting (None: no step verifier)
``recorder``    :class:`Recorder`: stores a failure event durably; its id
==============  ==========================================================================

A task (:meth:`TaskRunner.run`): **observe**, **plan**; the runner's own symbolic check
(:func:`f2p_executor.supervision.check_plan`) and then the verifier's; a refused plan is planned
again for the same scene, away from the refused ones, at most ``max_plan_refusals`` times, then
the task ends with the last reason (nothing executed, no failure event). Per step: **execute**,
then **verify_step**: the first observation after the step ended that shows the plan's objects
(the next ``reobserve_frames`` frames are tried when one misses or splits an object) is compared
with the relations the plan predicted (§4) and, with a step verifier, judged; the route
(:func:`~f2p_executor.supervision.route_step`) decides: an execution slip is replanned from what
is observed, at most ``max_step_retries`` times per task; a mispredicted effect is a failure event
F = (O_{k-1}, R_{k-1}, φ_k(a_k), R_k) handed to the recorder, then the task **replans** from
what it observes, at most ``request.max_replans`` times. A stage that cannot go on raises
:class:`TaskError`; the outcome then says why (``ended`` false). Cancel: ``cancelled()`` is
checked between stages and handed to every call that waits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from f2p_common.interfaces import GoalLiteral, Plan, RelationState, SegmentedScene, SkillCall, ground_literal
from f2p_executor.supervision import FAILURE, RETRY, check_plan, goal_status, route_step, step_mismatches
from f2p_failure.events import FailureEvent, FailureEventError

Stop = Callable[[], bool]

#: The stages a task reports through ``progress``, in the order they first come; "done" is the
#: last report of every task. ``TaskProgress`` has a ``STAGE_*`` constant for each (a test pins it).
STAGES = ("observe", "plan", "replan", "verify_plan", "execute", "verify_step", "done")


class ErrorCode(IntEnum):
    """Why a task stopped before its end: ``f2p_interfaces/action/RunTask``'s result constants
    (the same values; a test pins them)."""

    NONE = 0
    INVALID_GOAL = 1
    NO_OBSERVATION = 2
    PLANNING_FAILED = 3
    PLAN_REFUSED = 4
    SKILL_FAILED = 5
    STEP_UNCHECKABLE = 6
    STEP_SLIPPED = 7
    RECORD_FAILED = 8
    CANCELLED = 9
    TOO_LARGE = 10
    INTERNAL = 11


class TaskError(Exception):
    """Ends a task early with this message and its :class:`ErrorCode` (a stage failed, a
    timeout, a cancel)."""

    def __init__(self, message: str, code: ErrorCode):
        super().__init__(message)
        self.code = ErrorCode(code)


@dataclass
class Observation:
    """A scene with its relations. ``raw``: the transport's own form of it (e.g. the messages it
    arrived as), so that an adapter need not convert it back; None once the runner changed it."""

    scene: SegmentedScene
    relations: RelationState
    raw: Any = None

    def selected(self, object_ids: Sequence[str]) -> "Observation":
        """The observation of ``object_ids`` (each must be in it) in that order: a backend that
        segments each frame afresh lists its objects in any order, and a frame may hold more (the
        relations among these are the ones observed, whatever else the frame holds)."""
        ids = list(object_ids)
        objects = {o.id: o for o in self.scene.objects}
        at = [self.relations.object_ids.index(i) for i in ids]
        r = self.relations
        return Observation(SegmentedScene([objects[i] for i in ids], self.scene.frame_id, self.scene.stamp_ns,
                                          self.scene.source),
                           RelationState(ids, r.unary[at], r.binary[np.ix_(at, at)], r.frame_id, r.stamp_ns))


@dataclass(frozen=True)
class TaskRequest:
    """What to do. ``goal``: (predicate, subject id, object id or "") triples over the ids the
    camera reports; ``skeleton``: skill calls the plan must follow (empty: the planner's
    search); ``max_replans``: replans after failure events; ``observe_after_ns``: frames
    stamped earlier are not acted on (e.g. taken before a scene reset)."""

    goal: Sequence[tuple[str, str, str]]
    task_description: str = ""
    skeleton: Sequence[SkillCall] = ()
    max_replans: int = 0
    observe_after_ns: int = 0


@dataclass(frozen=True)
class ExecutedStep:
    """A step as run: the skill call and the relations the plan predicted after it."""

    call: SkillCall
    predicted: RelationState


class StepVerdict(Protocol):
    """A step verifier's verdict: its ``category`` ("success", a slip or a failure, paper 002
    §III-B) and ``reasoning`` (e.g. f2p_interfaces/GuardianVerdict)."""

    category: str
    reasoning: str


@dataclass(frozen=True)
class SkillEnd:
    """When a step ended: ``monotonic_s`` (this process's clock: observations received later
    count) and ``stamp_ns`` (the robot's clock: observations stamped earlier do not)."""

    monotonic_s: float
    stamp_ns: int = 0


class Observer(Protocol):
    def observe(self, received_after: float, stamped_after_ns: int, stop: Stop) -> Observation:
        """The first observation received after ``received_after`` (monotonic s) and stamped no
        earlier than ``stamped_after_ns``; TaskError when none comes in time or on cancel."""


class Planner(Protocol):
    def plan(self, request: TaskRequest, observation: Observation, refused: Sequence[Plan], stop: Stop) -> Plan:
        """A plan (an empty skeleton: the goal holds already); TaskError when planning fails."""


class Skills(Protocol):
    def execute(self, plan: Plan, k: int, scene: SegmentedScene, stop: Stop) -> SkillEnd:
        """Run step ``k`` of ``plan`` (``scene``: where its objects are, as perceived); TaskError
        when it was not executed, timed out or was cancelled."""


class Verifier(Protocol):
    def verify_plan(self, request: TaskRequest, observation: Observation, plan: Plan, stop: Stop) -> list[str]:
        """Why ``plan`` must not be executed (empty: it may)."""

    def verify_step(self, request: TaskRequest, step: ExecutedStep, before: Observation, after: Observation,
                    stop: Stop) -> StepVerdict | None:
        """A verdict on an executed step; None without a step verifier or when it cannot answer."""


class Recorder(Protocol):
    def record(self, event: FailureEvent, stop: Stop) -> str:
        """Store ``event`` durably (acknowledged only once stored); where it went. Raises
        (TaskError, OSError, FailureEventError) when it could not be stored."""


class NoVerifier:
    """No verifier: the runner's own symbolic check decides alone, and steps by their relations."""

    def verify_plan(self, request, observation, plan, stop) -> list[str]:
        return []

    def verify_step(self, request, step, before, after, stop) -> None:
        return None


@dataclass
class RunnerConfig:
    """robot_id: recorded in every failure event; max_step_retries: steps replanned per task
    after a slip; max_plan_refusals: plans refused per task before the task ends;
    min_goal_probability: the own check refuses plans predicting a lower p(goal);
    reobserve_frames: further frames tried after a step when one misses the plan's objects;
    max_request_*: the most one request may ask for (issue 43: a request must not take the robot
    down), checked by :meth:`check_request` before anything runs."""

    robot_id: str = "sim"
    max_step_retries: int = 2
    max_plan_refusals: int = 2
    min_goal_probability: float = 0.0
    reobserve_frames: int = 3
    max_request_goal_literals: int = 32
    max_request_skeleton_steps: int = 8
    max_request_replans: int = 10
    max_request_description_chars: int = 4096

    def __post_init__(self):
        for name in ("max_step_retries", "max_plan_refusals", "reobserve_frames", "max_request_replans"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("max_request_goal_literals", "max_request_skeleton_steps", "max_request_description_chars"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0.0 <= self.min_goal_probability <= 1.0:
            raise ValueError("min_goal_probability must be in [0, 1]")

    def check_request(self, goal_literals: int, skeleton_steps: int, replans: int, description_chars: int) -> None:
        """TaskError (TOO_LARGE) naming every size over its ``max_request_*`` limit."""
        over = [f"{name} {got} > {limit}" for name, got, limit in (
            ("goal literals", goal_literals, self.max_request_goal_literals),
            ("skeleton steps", skeleton_steps, self.max_request_skeleton_steps),
            ("max_replans", replans, self.max_request_replans),
            ("task_description characters", description_chars, self.max_request_description_chars)) if got > limit]
        if over:
            raise TaskError(f"the goal exceeds the executor's limits: {', '.join(over)}", ErrorCode.TOO_LARGE)


@dataclass
class TaskOutcome:
    """How a task ended. ``ended``: it ran to its end (False: ``error_code`` and ``message`` say
    which stage stopped it); ``success``: the goal was observed and every prediction held;
    ``model_version``: the model the last plan came from."""

    ended: bool = False
    error_code: ErrorCode = ErrorCode.NONE
    success: bool = False
    goal_observed: bool = False
    predictions_met: bool = False
    message: str = ""
    executed_steps: list[ExecutedStep] = field(default_factory=list)
    failure_event_ids: list[str] = field(default_factory=list)
    step_verdicts: list[Any] = field(default_factory=list)
    retries: int = 0
    final: Observation | None = None
    model_version: str = ""


Progress = Callable[..., None]


def ground_goal(goal: Sequence[tuple[str, str, str]], object_ids: Sequence[str]) -> list[GoalLiteral]:
    """The goal's id triples as literals over ``object_ids``; TaskError naming the bad literal."""
    index = {o: i for i, o in enumerate(object_ids)}
    try:
        return [ground_literal(p, s, o, index, f"goal[{i}]") for i, (p, s, o) in enumerate(goal)]
    except ValueError as exc:
        raise TaskError(f"bad goal: {exc}", ErrorCode.INVALID_GOAL) from None


class TaskRunner:
    """The task state machine (module docstring) over injected observer, planner, skills,
    verifier and recorder."""

    def __init__(self, cfg: RunnerConfig, *, observer: Observer, planner: Planner, skills: Skills, recorder: Recorder,
                 verifier: Verifier | None = None, log: Callable[[str], None] = lambda _m: None):
        self.cfg, self.observer, self.planner, self.skills = cfg, observer, planner, skills
        self.verifier, self.recorder, self.log = verifier or NoVerifier(), recorder, log

    def run(self, request: TaskRequest, progress: Progress = lambda *a, **k: None,
            cancelled: Stop = lambda: False) -> TaskOutcome:
        """Run ``request`` to its end or until a stage stops it; ``progress(stage, k=, n=,
        fraction=, status=, plan_id=)`` at each stage."""
        out = TaskOutcome()
        try:
            self.cfg.check_request(len(request.goal), len(request.skeleton), int(request.max_replans),
                                   len(request.task_description))
            final = self._run(request, out, progress, cancelled)
        except TaskError as exc:
            out.message, out.error_code = str(exc), exc.code
            out.predictions_met = not out.failure_event_ids
            return out
        out.ended, out.final = True, final
        goal = ground_goal(request.goal, final.relations.object_ids)
        out.goal_observed, unmet = goal_status(goal, final.relations)
        out.predictions_met = not out.failure_event_ids
        out.success = out.goal_observed and out.predictions_met
        events = len(out.failure_event_ids)
        out.message = ("done: the goal holds and every step went as predicted" if out.success else
                       f"the goal holds, but {events} step(s) did not go as predicted" if out.goal_observed else
                       f"not done: {len(unmet)} goal relation(s) do not hold"
                       + (f" after {events} failure event(s)" if events else ""))
        return out

    def _run(self, req: TaskRequest, out: TaskOutcome, progress: Progress, stop: Stop) -> Observation:
        cfg = self.cfg
        replans_left, attempt, retries_left = int(req.max_replans), 0, cfg.max_step_retries
        refusals_left, refused = cfg.max_plan_refusals, []
        progress("observe", status="waiting for an observation")
        obs = self.observer.observe(time.monotonic(), req.observe_after_ns, stop)
        while True:
            ground_goal(req.goal, obs.scene.object_ids)          # a bad goal ends the task before planning
            self._check_cancel(stop)
            progress("plan" if attempt == 0 else "replan", status=f"attempt {attempt + 1}")
            plan = self.planner.plan(req, obs, refused, stop)
            out.model_version = plan.model_version
            if not plan.skeleton:
                return obs                                    # the goal holds already, as the model sees it
            progress("verify_plan", n=len(plan.skeleton), plan_id=plan.plan_id)
            problems = (check_plan(plan, obs.scene.labels, cfg.min_goal_probability)
                        or self.verifier.verify_plan(req, obs, plan, stop))
            if problems:
                refused.append(plan)
                if refusals_left == 0:
                    raise TaskError(f"plan refused {len(refused)} time(s), the last: {'; '.join(problems)}",
                                    ErrorCode.PLAN_REFUSED)
                refusals_left -= 1
                self.log(f"plan {plan.plan_id} refused ({'; '.join(problems)[:200]}): searching again, away from "
                         f"the {len(refused)} refused")
                progress("replan", status=f"plan refused, searching elsewhere: {'; '.join(problems)[:200]}")
                continue
            refused = []                                      # a new scene from here on: its own refusals
            outcome, obs = self._execute_plan(req, plan, obs, out, progress, stop, retries_left)
            if outcome == "retry":
                retries_left -= 1
                out.retries += 1
            if outcome == "done":
                return obs
            if outcome == "failure":
                if replans_left == 0:
                    return obs
                replans_left -= 1
            attempt += 1

    def _execute_plan(self, req: TaskRequest, plan: Plan, obs: Observation, out: TaskOutcome, progress: Progress,
                      stop: Stop, retries_left: int) -> tuple[str, Observation]:
        """Run the plan's steps: ("done" | "retry" | "failure", the last observation)."""
        n = len(plan.skeleton)
        before = obs
        for k, ((name, target), params) in enumerate(zip(plan.skeleton, plan.parameters)):
            self._check_cancel(stop)
            progress("execute", k=k, n=n, fraction=k / n, status=f"{name} on {plan.object_ids[target]}",
                     plan_id=plan.plan_id)
            ended = self.skills.execute(plan, k, before.scene, stop)
            step = ExecutedStep(SkillCall(name, (plan.object_ids[target],), tuple(params)),
                                RelationState(plan.object_ids, plan.step_relations[k]["unary"],
                                              plan.step_relations[k]["binary"], plan.frame_id, plan.stamp_ns))
            out.executed_steps.append(step)
            progress("verify_step", k=k, n=n, fraction=(k + 0.5) / n, plan_id=plan.plan_id)
            after = self._observe_objects(ended, plan.object_ids, k, stop)
            mismatches = step_mismatches(plan, k, after.relations)
            verdict = self.verifier.verify_step(req, step, before, after, stop)
            if verdict is not None:
                out.step_verdicts.append(verdict)
            route = route_step(mismatches, None if verdict is None else verdict.category)
            if route == RETRY:
                if retries_left == 0:
                    raise TaskError(f"step {k} ({name}) slipped again ({verdict.category}) after "
                                    f"{self.cfg.max_step_retries} retries: {verdict.reasoning[:200]}",
                                    ErrorCode.STEP_SLIPPED)
                self.log(f"step {k} ({name}) slipped ({verdict.category}): replanning from what is observed, "
                         "no failure event")
                return "retry", after
            if route == FAILURE:
                out.failure_event_ids.append(self._record(req, plan, k, before, after, mismatches, verdict, stop))
                return "failure", after
            before = after
        return "done", before

    def _observe_objects(self, ended: SkillEnd, ids: Sequence[str], k: int, stop: Stop) -> Observation:
        """The first observation after step ``k`` that sees the plan's objects ``ids``, in their
        order (a backend that segments each frame afresh lists them in any order), and only them:
        a segment the plan did not know (a fragment a noisy depth frame shows beside a wall, an
        object that came into view) is left out of the comparison, which is over the plan's
        objects."""
        seen, received_after = [], ended.monotonic_s
        for _try in range(1 + self.cfg.reobserve_frames):
            obs = self.observer.observe(received_after, ended.stamp_ns, stop)
            if set(ids) <= set(obs.scene.object_ids):        # more is fine: a noisy frame's fragment beside them
                return obs if obs.scene.object_ids == list(ids) else obs.selected(ids)
            seen.append(obs.scene.object_ids)
            received_after = time.monotonic()                # the next frame
        raise TaskError(f"after step {k} the camera sees {seen[-1]}, not {list(ids)} (in {len(seen)} frames): the "
                        "step cannot be checked", ErrorCode.STEP_UNCHECKABLE)

    def _record(self, req: TaskRequest, plan: Plan, k: int, before: Observation, after: Observation,
                mismatches: list[dict], verdict: StepVerdict | None, stop: Stop) -> str:
        """The failure event of step ``k`` (§4), stored by the recorder; its id."""
        context = {"task_description": req.task_description, "plan_id": plan.plan_id,
                   "plan": [[s, int(t), [float(v) for v in a]] for (s, t), a in zip(plan.skeleton, plan.parameters)]}
        if verdict is not None:
            context["guardian"] = {"category": verdict.category, "confidence": float(getattr(verdict, "confidence", 1.0)),
                                   "reasoning": verdict.reasoning}
        rb, ra = before.relations, after.relations
        try:
            event = FailureEvent.from_plan_step(
                plan, k, robot_id=self.cfg.robot_id, labels=before.scene.labels, before=before.scene.clouds,
                relations_before=(rb.unary, rb.binary), observed_after=(ra.unary, ra.binary),
                after=after.scene.clouds, mismatches=mismatches, context=context, frame_id=before.scene.frame_id,
                stamp_ns=after.scene.stamp_ns)
            where = self.recorder.record(event, stop)
        except TaskError as exc:
            if exc.code == ErrorCode.CANCELLED:
                raise
            raise TaskError(f"step {k} did not go as predicted, and its failure event could not be recorded: {exc}",
                            ErrorCode.RECORD_FAILED) from None
        except (FailureEventError, OSError) as exc:
            raise TaskError(f"step {k} did not go as predicted, and its failure event could not be recorded: {exc}",
                            ErrorCode.RECORD_FAILED) from None
        self.log(f"failure at step {k}: {len(mismatches)} mismatched relation(s); event {event.event_id} recorded "
                 f"({where})")
        return event.event_id

    @staticmethod
    def _check_cancel(stop: Stop) -> None:
        if stop():
            raise TaskError("cancelled", ErrorCode.CANCELLED)
