"""The task state machine without ROS (f2p_executor.task_runner): observe → plan → verify →
execute → compare → record → replan, over in-memory fakes of the observer, planner, skills,
verifier and recorder — every bound (plan refusals, step retries, replans, re-observed frames),
cancel, and each stage's failure ending the task with its reason."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from f2p_common.interfaces import Plan, RelationState, SegmentedObject, SegmentedScene
from f2p_common.vocabulary import BINARY_RELATIONS
from f2p_executor.task_runner import (ErrorCode, Observation, RunnerConfig, SkillEnd, TaskError, TaskRequest,
                                      TaskRunner, ground_goal)
from f2p_failure.events import FailureEvent

IDS = ["table_0", "bin_1", "cuboid_2"]
LABELS = ["table", "bin", "cuboid"]
INSIDE, ABOVE = BINARY_RELATIONS.index("inside"), BINARY_RELATIONS.index("above")
GOAL = [("inside", "cuboid_2", "bin_1"), ("above", "bin_1", "table_0")]


def relations(*ones, ids=IDS) -> RelationState:
    n = len(ids)
    u, b = np.zeros((n, 3), np.float32), np.zeros((n, n, len(BINARY_RELATIONS)), np.float32)
    u[1:, 0] = 1.0                                              # bin and cuboid are movable
    for i, j, k in ones:
        b[i, j, k] = 1.0
    return RelationState(list(ids), u, b)


def observation(rel: RelationState, ids=IDS, stamp_ns: int = 0) -> Observation:
    rng = np.random.default_rng(len(ids))
    objects = [SegmentedObject(i, LABELS[IDS.index(i)] if i in IDS else "cuboid",
                               rng.normal(size=(8, 3)).astype(np.float32)) for i in ids]
    if set(rel.object_ids) < set(ids):                           # a fragment beside them: no relation of its own
        n, at = len(ids), [ids.index(i) for i in rel.object_ids]
        u, b = np.zeros((n, 3), np.float32), np.zeros((n, n, len(BINARY_RELATIONS)), np.float32)
        u[at], b[np.ix_(at, at)] = rel.unary, rel.binary
        rel = RelationState(list(ids), u, b)
    elif sorted(ids) != sorted(rel.object_ids):                  # a frame that misses an object
        rel = relations(ids=ids)
    return Observation(SegmentedScene(objects, stamp_ns=stamp_ns), rel.reordered(ids))


def plan(predicted: RelationState, params=(0.1, 0.2, 0.3), plan_id="p") -> Plan:
    return Plan([("pick_place", 2)], [list(params)], [{"unary": predicted.unary, "binary": predicted.binary}], 0.9,
                goal=ground_goal(GOAL, IDS), object_ids=list(IDS), plan_id=plan_id, model_version="m1")


BEFORE = relations((2, 0, ABOVE), (1, 0, ABOVE))                 # the bin and the cuboid on the table
DONE = relations((2, 1, INSIDE), (1, 0, ABOVE))                  # the cuboid in the bin


class World:
    """Observer + skills: the world's relations change as the executed steps say."""

    def __init__(self, effects: list[RelationState], frames: list[list[str]] | None = None):
        self.state, self.effects, self.frames = BEFORE, list(effects), list(frames or [])
        self.executed, self.observed = [], 0

    def observe(self, received_after, stamped_after_ns, stop):
        if stop():
            raise TaskError("cancelled", ErrorCode.CANCELLED)
        self.observed += 1
        ids = self.frames.pop(0) if self.frames else IDS
        return observation(self.state, ids)

    def execute(self, plan, k, scene, stop):
        self.executed.append((plan.plan_id, k))
        self.state = self.effects.pop(0)
        return SkillEnd(0.0, 0)


class Planner:
    """Proposes its plans in turn, the last one again; remembers what it was told was refused."""

    def __init__(self, *plans: Plan):
        self.plans, self.refused_seen = list(plans), []

    def plan(self, request, obs, refused, stop):
        self.refused_seen.append([p.plan_id for p in refused])
        return self.plans.pop(0) if len(self.plans) > 1 else self.plans[0]


@dataclass
class Verdict:
    category: str
    reasoning: str = ""
    confidence: float = 0.9


class Verifier:
    def __init__(self, plan_problems=(), step_categories=()):
        self.plan_problems, self.step_categories = list(plan_problems), list(step_categories)

    def verify_plan(self, request, obs, plan, stop):
        problem = self.plan_problems.pop(0) if self.plan_problems else ""
        return [problem] if problem else []

    def verify_step(self, request, step, before, after, stop):
        return Verdict(self.step_categories.pop(0)) if self.step_categories else None


class Recorder:
    def __init__(self, fail: Exception | None = None):
        self.events: list[FailureEvent] = []
        self.fail = fail

    def record(self, event, stop):
        if self.fail is not None:
            raise self.fail
        self.events.append(event)
        return f"spool/{event.event_id}.f2pevent"


def runner(world, planner, verifier=None, recorder=None, **cfg):
    recorder = recorder or Recorder()
    return TaskRunner(RunnerConfig(**cfg), observer=world, planner=planner, skills=world, verifier=verifier,
                      recorder=recorder), recorder


def test_a_step_as_predicted_reaches_the_goal():
    world = World([DONE])
    r, rec = runner(world, Planner(plan(DONE)))
    stages = []
    out = r.run(TaskRequest(GOAL), lambda stage, **kw: stages.append(stage))
    assert (out.ended, out.success, out.goal_observed, out.predictions_met) == (True, True, True, True), out.message
    assert stages == ["observe", "plan", "verify_plan", "execute", "verify_step"]
    assert out.executed_steps[0].call.target_ids == ("cuboid_2",) and rec.events == []
    assert out.final.relations == DONE


def test_a_mispredicted_step_is_a_failure_event_then_the_task_replans_within_its_bound():
    predicted_wrong = relations((2, 1, INSIDE))                  # the model forgets the bin stays on the table
    world = World([DONE])
    r, rec = runner(world, Planner(plan(predicted_wrong), plan(relations(), plan_id="empty")))
    out = r.run(TaskRequest(GOAL, max_replans=0))
    assert out.ended and (out.goal_observed, out.predictions_met, out.success) == (True, False, False)
    assert "did not go as predicted" in out.message
    (event,) = rec.events
    assert out.failure_event_ids == [event.event_id] and event.model_version == "m1" and event.robot_id == "sim"
    assert {(m["predicate"], m["subject"], m["object"]) for m in event.mismatches} == {("above", 1, 0)}
    # with a replan left, the runner plans again from what it observes (here: an empty plan, the goal holds)
    world, planner = World([DONE]), Planner(plan(predicted_wrong), Plan([], [], [], 1.0, object_ids=list(IDS)))
    r, rec = runner(world, planner)
    out = r.run(TaskRequest(GOAL, max_replans=1))
    assert out.ended and out.goal_observed and len(rec.events) == 1 and len(planner.refused_seen) == 2


def test_replans_are_bounded_by_the_request():
    wrong = relations((2, 1, INSIDE))
    world = World([BEFORE] * 5)                                   # nothing ever happens
    planner = Planner(plan(wrong))
    r, rec = runner(world, planner)
    out = r.run(TaskRequest(GOAL, max_replans=2))
    assert out.ended and not out.goal_observed and len(rec.events) == 3 and len(world.executed) == 3
    assert out.message == "not done: 1 goal relation(s) do not hold after 3 failure event(s)"
    assert out.error_code == ErrorCode.NONE                        # it ran to its end


def test_a_refused_plan_is_searched_again_and_refusals_are_bounded():
    world = World([DONE])
    planner = Planner(plan(DONE, plan_id="a"), plan(DONE, (0.3, 0.1, 0.2), plan_id="b"))
    r, rec = runner(world, planner, Verifier(plan_problems=["it ends between the tables", ""]), max_plan_refusals=1)
    stages = []
    out = r.run(TaskRequest(GOAL), lambda stage, **kw: stages.append(stage))
    assert out.success and stages[:6] == ["observe", "plan", "verify_plan", "replan", "plan", "verify_plan"]
    assert planner.refused_seen == [[], ["a"]] and world.executed == [("b", 0)]
    # a verifier refusing every plan: max_plan_refusals more searches, then the task ends, nothing executed
    world = World([DONE])
    r, rec = runner(world, Planner(plan(DONE)), Verifier(plan_problems=["no"] * 10), max_plan_refusals=2)
    out = r.run(TaskRequest(GOAL))
    assert not out.ended and out.message.startswith("plan refused 3 time(s), the last: no")
    assert out.error_code == ErrorCode.PLAN_REFUSED
    assert world.executed == [] and rec.events == [] and out.predictions_met


def test_the_own_check_refuses_a_structurally_wrong_plan_without_asking_the_verifier():
    bad = Plan([("pick_place", 0)], [[0.1, 0.2, 0.3]], [{"unary": DONE.unary, "binary": DONE.binary}], 0.9,
               object_ids=list(IDS))                               # the table is not movable
    r, _ = runner(World([DONE]), Planner(bad), Verifier(plan_problems=[]), max_plan_refusals=0)
    out = r.run(TaskRequest(GOAL))
    assert not out.ended and "needs a target that is movable" in out.message


def test_execution_slips_are_retried_without_failure_events_and_bounded():
    world = World([BEFORE, BEFORE, BEFORE])
    r, rec = runner(world, Planner(plan(DONE)), Verifier(step_categories=["no_gripper_close", "imprecise_grasp"]),
                    max_step_retries=1)
    out = r.run(TaskRequest(GOAL))
    assert not out.ended and "step 0 (pick_place) slipped again (imprecise_grasp) after 1 retries" in out.message
    assert out.retries == 1 and len(out.step_verdicts) == 2 and rec.events == [] and len(world.executed) == 2
    assert out.error_code == ErrorCode.STEP_SLIPPED


def test_a_step_the_verifier_fails_is_a_failure_event_even_when_relations_match():
    world = World([DONE])
    r, rec = runner(world, Planner(plan(DONE)), Verifier(step_categories=["wrong_placement"]))
    out = r.run(TaskRequest(GOAL))
    assert out.ended and not out.predictions_met and rec.events[0].context["guardian"]["category"] == "wrong_placement"


def test_objects_missed_in_a_frame_are_looked_for_in_the_next_frames_then_the_step_cannot_be_checked():
    """A frame that adds a segment beside the plan's objects (a noisy frame's fragment) is checked on them."""
    shuffled = ["cuboid_2", "table_0", "bin_1"]
    world = World([DONE], frames=[IDS, IDS[:2], shuffled])       # before; after: a frame missing one, then all
    r, _ = runner(world, Planner(plan(DONE)))
    out = r.run(TaskRequest(GOAL))
    assert out.success and out.final.scene.object_ids == IDS and out.final.raw is None   # back in the plan's order
    world = World([DONE], frames=[IDS, ["cuboid_9"] + shuffled])     # a fragment beside the plan's objects
    r, _ = runner(world, Planner(plan(DONE)))
    out = r.run(TaskRequest(GOAL))
    assert out.success and out.final.scene.object_ids == IDS and out.final.relations == DONE
    world = World([DONE], frames=[IDS] + [IDS[:2]] * 3)
    r, _ = runner(world, Planner(plan(DONE)), reobserve_frames=2)
    out = r.run(TaskRequest(GOAL))
    assert not out.ended and "the step cannot be checked" in out.message and "(in 3 frames)" in out.message
    assert out.error_code == ErrorCode.STEP_UNCHECKABLE


def test_a_failure_that_cannot_be_recorded_ends_the_task_with_the_reason():
    r, _ = runner(World([DONE]), Planner(plan(relations((2, 1, INSIDE)))), recorder=Recorder(OSError("disk full")))
    out = r.run(TaskRequest(GOAL))
    assert not out.ended and "could not be recorded: disk full" in out.message
    assert out.error_code == ErrorCode.RECORD_FAILED


def test_cancel_and_stage_errors_end_the_task_with_their_reason():
    class FailingPlanner:
        def plan(self, request, obs, refused, stop):
            raise TaskError("planning failed: no skeleton reaches the goal", ErrorCode.PLANNING_FAILED)
    r, _ = runner(World([DONE]), FailingPlanner())
    out = r.run(TaskRequest(GOAL))
    assert not out.ended and out.message == "planning failed: no skeleton reaches the goal"
    assert out.error_code == ErrorCode.PLANNING_FAILED
    calls = iter([False, True])                                    # cancelled after the first observation
    r, _ = runner(World([DONE]), Planner(plan(DONE)))
    out = r.run(TaskRequest(GOAL), cancelled=lambda: next(calls, True))
    assert not out.ended and out.message == "cancelled" and out.executed_steps == []
    assert out.error_code == ErrorCode.CANCELLED


def test_a_bad_goal_is_refused_before_planning():
    planner = Planner(plan(DONE))
    r, _ = runner(World([DONE]), planner)
    out = r.run(TaskRequest([("inside", "mug_9", "bin_1")]))
    assert not out.ended and "bad goal: goal[0]: unknown object id 'mug_9'" in out.message
    assert out.error_code == ErrorCode.INVALID_GOAL
    out = r.run(TaskRequest([("levitating", "bin_1", "")]))
    assert "unknown relation predicate" in out.message and planner.refused_seen == []


def test_runner_settings_are_validated():
    with pytest.raises(ValueError, match="max_plan_refusals"):
        RunnerConfig(max_plan_refusals=-1)
    with pytest.raises(ValueError, match="min_goal_probability"):
        RunnerConfig(min_goal_probability=1.5)


def test_error_codes_are_run_tasks():
    """The runner's codes are RunTask's result constants (the node passes them through)."""
    from f2p_interfaces.action import RunTask
    wire = {k[len("ERROR_"):]: v for k, v in vars(RunTask.Result).items() if k.startswith("ERROR_")}
    assert wire == {c.name: c.value for c in ErrorCode}
