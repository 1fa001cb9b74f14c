"""The task executor: its decisions (ROS-free) and the robot graph end to end over DDS —
sim_robot, perception, relation_detector, planner and task_executor in one process, each a
lifecycle node activated through its services.

The end-to-end test is the loop of paper 000 on the ROS graph: transport with 3 objects (task
seed 1000). The shipped pre-trained model plans to carry the bin to table_b and predicts the
items stay behind; they ride along, so the step's observed relations differ from the prediction:
a failure event is recorded (spooled durably, published) although the goal holds. After
SwapModel to the child learned from that failure (shipped), the same task succeeds as predicted.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from f2p_common.interfaces import Plan, RelationState
from f2p_executor.supervision import check_plan, goal_status, step_mismatches
from f2p_executor.failure_recorder_node import FailureRecorderNode
from f2p_executor.task_executor_node import TaskExecutorNode
from f2p_failure.events import list_events, load_event
from f2p_interfaces.action import RunTask
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import ExpectedMotion, GuardianVerdict, Relation, TaskProgress
from f2p_interfaces.srv import ResetScene, SwapModel, VerifyPlan
from f2p_perception.perception_node import PerceptionNode
from f2p_planner.planner_node import PlannerNode
from f2p_relations.relation_detector_node import RelationDetectorNode
from f2p_ros.actions import ActionClient
from f2p_ros.conversions import (expected_motion_from_msg, failure_event_from_msg, model_info_to_msg, plan_from_msg,
                                 stage_from_msg)
from f2p_sim.sim_robot_node import SimRobotNode
from f2p_skill_effect.checkpoint import model_info, shipped_model
from support.ros import WAIT_S, LifecycleClient, RosHarness, collector, wait_future

INSIDE, ABOVE = 8, 4


# ---------------------------------------------------------------------------- decisions (ROS-free)
def _state(n, ones=()):
    u, b = np.zeros((n, 3), np.float32), np.zeros((n, n, 9), np.float32)
    for i, j, k in ones:
        b[i, j, k] = 1.0
    return RelationState([f"o{i}" for i in range(n)], u, b)


def _plan(predicted_after):
    return Plan([("pick_place", 1)], [[0.1, 0.2, 0.3]], [{"unary": predicted_after.unary, "binary": predicted_after.binary}],
                0.7, goal=[("inside", 2, 1), ("above", 1, 0)], object_ids=["o0", "o1", "o2"])


def test_step_mismatches_and_goal_status():
    predicted = _state(3, [(1, 0, ABOVE)])                      # the model: the item stays behind
    observed = _state(3, [(1, 0, ABOVE), (2, 1, INSIDE)])       # the world: it rode along
    plan = _plan(predicted)
    assert [(m["predicate"], m["subject"], m["object"], m["observed"]) for m in step_mismatches(plan, 0, observed)] \
        == [("inside", 2, 1, True)]
    assert goal_status(plan.goal, observed) == (True, [])
    assert goal_status(plan.goal, predicted) == (False, [("inside", 2, 1)])
    with pytest.raises(ValueError, match="not the plan's"):
        step_mismatches(plan, 0, _state(2))


def test_check_plan_refuses_structurally_wrong_plans():
    plan = _plan(_state(3))
    assert check_plan(plan, ["table", "bin", "cuboid"]) == []
    assert "needs a target that is movable" in check_plan(plan, ["table", "table", "cuboid"])[0]
    bad = Plan([("pick_place", 1)], [[0.1, 0.2, 9.0]], plan.step_relations, 0.7, goal=plan.goal, object_ids=plan.object_ids)
    assert "outside its box" in check_plan(bad, ["table", "bin", "cuboid"])[0]
    assert "below 0.9" in check_plan(plan, ["table", "bin", "cuboid"], min_goal_probability=0.9)[0]


# ---------------------------------------------------------------------------- the graph over DDS
def _start_graph(tmp_path, sim=(), executor=(), guardian: bool = False):
    """The robot graph in one process (sim_robot ... failure_recorder, task_executor), each node activated; extra
    parameters for the simulated robot and the executor, and Guardian when asked."""
    harness = RosHarness(threads=10)
    try:
        nodes = {
            "sim_robot": SimRobotNode(context=harness.context, parameter_overrides=[
                Parameter("rate_hz", value=10.0), *sim]),
            "perception": PerceptionNode(context=harness.context),
            "relation_detector": RelationDetectorNode(context=harness.context),
            "planner": PlannerNode(context=harness.context, parameter_overrides=[
                Parameter("skills", value=["pick_place"]), Parameter("torch_threads", value=1)]),
            "failure_recorder": FailureRecorderNode(context=harness.context, parameter_overrides=[
                Parameter("spool_dir", value=str(tmp_path / "spool"))]),          # no learner: events stay pending
            "task_executor": TaskExecutorNode(context=harness.context, parameter_overrides=[
                Parameter("observe_timeout_s", value=10.0), *executor]),
        }
        if guardian:
            from f2p_guardian.guardian_node import GuardianNode
            nodes["guardian"] = GuardianNode(context=harness.context)
        for node in nodes.values():
            harness.add(node)
        probe = harness.node("graph_probe")
        for name in nodes:
            LifecycleClient(probe, name).activate()
    except BaseException:
        harness.close()
        raise
    return harness, probe, nodes, tmp_path / "spool"


@pytest.fixture
def graph(tmp_path):
    started = _start_graph(tmp_path)
    try:
        yield started
    finally:
        started[0].close()


def _reset(probe, seed=1000) -> dict:
    """A task scene: the RunTask goal's fields for it, ``observe_after`` included — a frame taken
    before the reset (still in flight when the task starts) shows the previous task's world."""
    client = probe.create_client(ResetScene, "/reset_scene")
    assert client.wait_for_service(timeout_sec=WAIT_S)
    resp = wait_future(client.call_async(ResetScene.Request(task="transport", n_objects=3, seed=seed)))
    assert resp.success, resp.message
    return {"goal": [Relation(predicate=g.predicate, subject_id=g.subject_id, object_id=g.object_id) for g in resp.goal],
            "observe_after": resp.stamp}


def _run(client, task: dict, **fields):
    feedback = []
    handle = wait_future(client.send_goal_async(RunTask.Goal(**task, **fields),
                                                feedback_callback=lambda m: feedback.append(
                                                    stage_from_msg(TaskProgress, m.feedback.progress.stage))))
    assert handle.accepted
    wrapped = wait_future(handle.get_result_async(), timeout=8 * WAIT_S)
    return wrapped, feedback


def test_run_task_fails_with_the_pretrained_model_and_succeeds_after_swapping_to_the_learned_one(graph):
    harness, probe, nodes, spool = graph
    events, got_event = collector(probe, FailureEventMsg, "/failure_events",
                                  QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    motions, _ = collector(probe, ExpectedMotion, "/expected_motion",
                           QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    run = ActionClient(probe, RunTask, "/run_task")
    assert run.wait_for_server(timeout_sec=WAIT_S)
    task = _reset(probe)

    wrapped, stages = _run(run, task, task_description="carry the bin with its items to table_b")
    res = wrapped.result
    # before the skill: its target and where it sends it, for perception's tracker
    step = res.executed_steps[0].skill
    assert [expected_motion_from_msg(m)[:1] for m in motions] == [("bin_2",)]
    assert np.allclose(expected_motion_from_msg(motions[0])[1], [*step.parameters[:2], 0.0])
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, res.message
    assert (res.success, res.goal_observed, res.predictions_met) == (False, True, False), res.message
    assert res.error_code == RunTask.Result.ERROR_NONE
    assert len(res.failure_event_ids) == 1 and len(res.executed_steps) == 1
    assert res.executed_steps[0].skill.target_ids == ["bin_2"]
    assert stages[:4] == ["observe", "plan", "verify_plan", "execute"] and "verify_step" in stages
    # the event: durable in the spool, the same on the topic
    (path,) = list_events(spool)
    event = load_event(path)
    assert event.event_id == res.failure_event_ids[0] and event.model_version == "ae063623659bb4aa"
    assert {(m["predicate"], event.segment_ids[m["subject"]]) for m in event.mismatches} >= {("inside", "cuboid_3")}
    assert got_event.wait(WAIT_S) and failure_event_from_msg(events[0]) == event

    swap = probe.create_client(SwapModel, "/swap_model")
    assert swap.wait_for_service(timeout_sec=WAIT_S)
    learned = model_info_to_msg(model_info(shipped_model("skill_effect_transport3_learned.pt")))
    resp = wait_future(swap.call_async(SwapModel.Request(model=learned)))
    assert resp.success, resp.message

    task = _reset(probe)
    wrapped, _ = _run(run, task, task_description="carry the bin with its items to table_b")
    res = wrapped.result
    assert (res.success, res.goal_observed, res.predictions_met) == (True, True, True), res.message
    assert res.failure_event_ids == [] and len(list_events(spool)) == 1


def test_run_task_refusals_and_timeouts(graph):
    harness, probe, nodes, spool = graph
    run = ActionClient(probe, RunTask, "/run_task")
    assert run.wait_for_server(timeout_sec=WAIT_S)
    _reset(probe)
    wrapped, _ = _run(run, {"goal": [Relation(predicate="inside", subject_id="mug_9", object_id="bin_2")]})
    assert wrapped.status == GoalStatus.STATUS_ABORTED and "unknown object id 'mug_9'" in wrapped.result.message
    assert wrapped.result.error_code == RunTask.Result.ERROR_INVALID_GOAL
    wrapped, _ = _run(run, {"goal": [Relation(predicate="levitating", subject_id="bin_2")]})
    assert wrapped.status == GoalStatus.STATUS_ABORTED and "unknown relation predicate" in wrapped.result.message
    # one task at a time: a goal sent while one runs is rejected
    first = wait_future(run.send_goal_async(RunTask.Goal(goal=[Relation(predicate="above", subject_id="bin_2",
                                                                        object_id="table_1")])))
    second = wait_future(run.send_goal_async(RunTask.Goal(goal=[Relation(predicate="above", subject_id="bin_2",
                                                                         object_id="table_1")])))
    assert first.accepted and not second.accepted
    wait_future(first.get_result_async(), timeout=8 * WAIT_S)
    # frames stamped before observe_after (a view from before the caller's reset) are not acted on
    from builtin_interfaces.msg import Time
    nodes["task_executor"].v["observe_timeout_s"] = 1.0
    wrapped, _ = _run(run, {"goal": [Relation(predicate="above", subject_id="bin_2", object_id="table_1")],
                            "observe_after": Time(sec=int(time.time()) + 10 ** 6)})   # the camera's clock: wall
    assert wrapped.status == GoalStatus.STATUS_ABORTED and "no observation" in wrapped.result.message
    # the camera stops: the task ends with that reason, the executor keeps serving
    LifecycleClient(probe, "sim_robot").transition(4)            # deactivate: no more frames
    stopped = Time(sec=int(time.time()) + 1)       # not a frame already on its way through perception
    wrapped, _ = _run(run, {"goal": [Relation(predicate="above", subject_id="bin_2", object_id="table_1")],
                            "observe_after": stopped})
    assert wrapped.status == GoalStatus.STATUS_ABORTED and "no observation" in wrapped.result.message
    assert wrapped.result.error_code == RunTask.Result.ERROR_NO_OBSERVATION
    assert list_events(spool) == []


def test_a_refused_plan_is_searched_again_and_refusals_are_bounded(tmp_path):
    harness, probe, nodes, spool = _start_graph(tmp_path, executor=[
        Parameter("verifier", value="refusing_verifier"), Parameter("max_plan_refusals", value=1)])
    try:
        seen, refuse = [], {"first": 1}

        def verify(req, resp):                 # VerifyPlan as a test peer: refuses the first plans it sees
            seen.append(plan_from_msg(req.plan))
            refused = len(seen) <= refuse["first"]
            resp.success = True
            resp.verdict = GuardianVerdict(verdict=GuardianVerdict.VERDICT_FAILURE if refused else
                                           GuardianVerdict.VERDICT_SUCCESS,
                                           category="wrong_placement" if refused else "success",
                                           reasoning="it ends between the tables" if refused else "")
            return resp
        probe.create_service(VerifyPlan, "/refusing_verifier", verify)
        run = ActionClient(probe, RunTask, "/run_task")
        assert run.wait_for_server(timeout_sec=WAIT_S)
        wrapped, stages = _run(run, _reset(probe))
        assert wrapped.status == GoalStatus.STATUS_SUCCEEDED and wrapped.result.goal_observed, wrapped.result.message
        assert stages[:6] == ["observe", "plan", "verify_plan", "replan", "plan", "verify_plan"]
        assert len(seen) == 2 and not np.allclose(seen[0].parameters, seen[1].parameters)   # another search
        executed = wrapped.result.executed_steps[0].skill.parameters
        assert np.allclose(executed, seen[1].parameters[0], atol=1e-6)      # the plan the verifier passed
        assert len(list_events(spool)) == len(wrapped.result.failure_event_ids)
        # a verifier that refuses every plan: the task ends after max_plan_refusals more searches
        refuse["first"], events_before = 10 ** 6, len(list_events(spool))
        wrapped, stages = _run(run, _reset(probe))
        assert wrapped.status == GoalStatus.STATUS_ABORTED, wrapped.result.message
        assert "plan refused 2 time(s)" in wrapped.result.message and "wrong_placement" in wrapped.result.message
        assert wrapped.result.error_code == RunTask.Result.ERROR_PLAN_REFUSED
        assert stages.count("verify_plan") == 2 and wrapped.result.executed_steps == []
        assert len(list_events(spool)) == events_before         # nothing executed: nothing to learn from
    finally:
        harness.close()


# ---------------------------------------------------------------------------- with Guardian (paper 002 §IV-D)
@pytest.fixture
def guarded_graph(tmp_path, request):
    """The graph with Guardian verifying plans and steps; request.param: the robot's execution noise."""
    started = _start_graph(tmp_path, sim=[Parameter("execution_noise", value=float(request.param))], executor=[
        Parameter("verifier", value="verify_plan"), Parameter("execution_verifier", value="verify_execution"),
        Parameter("max_step_retries", value=1)], guardian=True)
    try:
        yield started
    finally:
        started[0].close()


@pytest.mark.parametrize("guarded_graph", [0.0], indirect=True)
def test_guardian_passes_the_plan_and_the_step_and_the_mismatch_is_still_a_failure_event(guarded_graph):
    harness, probe, nodes, spool = guarded_graph
    run = ActionClient(probe, RunTask, "/run_task")
    assert run.wait_for_server(timeout_sec=WAIT_S)
    wrapped, stages = _run(run, _reset(probe), task_description="carry the bin with its items to table_b")
    res = wrapped.result
    assert (res.goal_observed, res.predictions_met, res.retries) == (True, False, 0), res.message
    assert [v.category for v in res.step_verdicts] == ["success"]
    (path,) = list_events(spool)                   # the model mispredicted: Fail2Progress learns from it
    assert load_event(path).context["guardian"]["category"] == "success"


@pytest.mark.parametrize("guarded_graph", [1.0], indirect=True)
def test_guardian_routes_execution_slips_to_retries_not_failure_events(guarded_graph):
    harness, probe, nodes, spool = guarded_graph
    run = ActionClient(probe, RunTask, "/run_task")
    assert run.wait_for_server(timeout_sec=WAIT_S)
    wrapped, stages = _run(run, _reset(probe), task_description="carry the bin with its items to table_b")
    res = wrapped.result
    assert wrapped.status == GoalStatus.STATUS_ABORTED and "slipped again" in res.message, res.message
    assert res.error_code == RunTask.Result.ERROR_STEP_SLIPPED
    assert res.retries == 1 and len(res.step_verdicts) == 2 and stages.count("replan") == 1
    assert {v.category for v in res.step_verdicts} <= {"no_gripper_close", "imprecise_grasp", "no_progress"}
    assert list_events(spool) == []                # a slip is not the model's fault: nothing to learn
