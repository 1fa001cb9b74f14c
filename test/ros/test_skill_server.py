"""The arm skill server (f2p_skills) against the simulated UR5e behind UR's and Robotiq's driver
interfaces (f2p_sim.sim_arm_node), over DDS: a physical pick and place, and each fault with its
error code — unreachable (nothing moves), a protective stop mid-skill, cancel, stale joint
states, a controller that is not there; the simulated driver's own refusals."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from control_msgs.action import FollowJointTrajectory
from lifecycle_msgs.msg import Transition
from rclpy.parameter import Parameter

from f2p_common.interfaces import OrientedBox, SkillCall
from f2p_interfaces.action import ExecuteSkill
from f2p_interfaces.srv import ResetScene
from f2p_ros.actions import ActionClient
from f2p_ros.conversions import box_from_msg, box_to_msg, joint_trajectory_to_msg, skill_call_to_msg
from f2p_sim.sim_arm_node import SimArmNode
from f2p_skills.arms import UR5E
from f2p_skills.skill_server_node import SkillServerNode
from f2p_skills.skills import SkillErrorCode
from support.ros import WAIT_S, LifecycleClient, wait_future, wait_until

FAST = [Parameter("real_time_factor", value=4.0)]


def test_the_error_codes_are_execute_skills():
    for code in SkillErrorCode:
        assert getattr(ExecuteSkill.Result, f"ERROR_{code.name}") == code.value


@pytest.fixture
def cell(ros):
    sim = ros.add(SimArmNode(context=ros.context, parameter_overrides=FAST))
    server = ros.add(SkillServerNode(context=ros.context, parameter_overrides=[
        Parameter("speed", value=1.0), Parameter("controller_timeout_s", value=2.0)]))
    probe = ros.node("arm_probe")
    LifecycleClient(probe, "sim_arm").activate()
    LifecycleClient(probe, "skill_server").activate()
    reset = probe.create_client(ResetScene, "/reset_scene")
    skill = ActionClient(probe, ExecuteSkill, "/execute_skill")
    assert reset.wait_for_service(timeout_sec=WAIT_S) and skill.wait_for_server(timeout_sec=WAIT_S)
    resp = wait_future(reset.call_async(ResetScene.Request(task="transport", n_objects=3, seed=1000)))
    assert resp.success, resp.message
    boxes = {o: box_from_msg(b) for o, b in zip(resp.object_ids, resp.boxes)}
    wait_until(lambda: server._joints_at > 0, timeout=WAIT_S)
    return sim, server, probe, skill, boxes


def _goal(skill: str, target: str, params, box: OrientedBox) -> ExecuteSkill.Goal:
    goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall(skill, (target,), params)), target_boxes=[box_to_msg(box)])
    goal.header.frame_id = "world"
    return goal


def _send(client, goal, feedback=None, timeout=8 * WAIT_S):
    handle = wait_future(client.send_goal_async(goal, feedback_callback=feedback))
    assert handle.accepted
    return handle, handle.get_result_async()


def _center(sim, object_id: str) -> np.ndarray:
    return sim.world.object_centres()[object_id]


def test_a_pick_and_place_through_the_vendor_interfaces_moves_the_object(cell):
    sim, server, probe, skill, boxes = cell
    phases = []
    before = _center(sim, "cuboid_3")
    _, result = _send(skill, _goal("pick_place", "cuboid_3", (0.0, 0.66, 0.0), boxes["cuboid_3"]),
                      lambda m: phases.append(m.feedback.phase))
    wrapped = wait_future(result, timeout=8 * WAIT_S)
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, wrapped.result.message
    assert wrapped.result.success and wrapped.result.error_code == ExecuteSkill.Result.ERROR_NONE
    assert phases[:4] == ["open", "approach", "descend", "grasp"] and phases[-1] == "view"
    after = _center(sim, "cuboid_3")
    np.testing.assert_allclose(after[:2], before[:2] + [0.0, 0.66], atol=0.02)      # carried to the other table
    assert abs(after[2] - before[2]) < 0.02
    assert not sim.world.protective_stopped


def test_an_unreachable_target_is_refused_and_nothing_moves(cell):
    sim, server, probe, skill, boxes = cell
    far = OrientedBox([1.4, 0.0, 0.03], [0, 0, 0, 1.0], [0.05, 0.05, 0.05])
    q0 = sim.world.joint_state()[1]
    _, result = _send(skill, _goal("pick_place", "cuboid_3", (0.0, 0.1, 0.0), far))
    wrapped = wait_future(result)
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_UNREACHABLE, wrapped.result.message
    assert "out of ur5e's reach" in wrapped.result.message
    np.testing.assert_allclose(sim.world.joint_state()[1], q0, atol=1e-3)
    empty = OrientedBox([0.3, 0.0, 0.03], [0, 0, 0, 1.0], [0.0, 0.0, 0.0])
    _, result = _send(skill, _goal("pick_place", "cuboid_3", (0.0, 0.1, 0.0), empty))
    assert wait_future(result).result.error_code == ExecuteSkill.Result.ERROR_INVALID_GOAL
    _, result = _send(skill, _goal("open_drawer", "cuboid_3", (0.1,), boxes["cuboid_3"]))
    assert wait_future(result).result.error_code == ExecuteSkill.Result.ERROR_NOT_SUPPORTED


def test_a_protective_stop_mid_skill_stops_it_and_says_so(cell):
    sim, server, probe, skill, boxes = cell
    in_transport = threading.Event()
    _, result = _send(skill, _goal("pick_place", "cuboid_3", (0.0, 0.66, 0.0), boxes["cuboid_3"]),
                      lambda m: m.feedback.phase == "transport" and in_transport.set())
    assert in_transport.wait(8 * WAIT_S)
    sim.world.trigger_protective_stop("the pendant's stop button")
    wrapped = wait_future(result)
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_ROBOT_STOPPED, wrapped.result.message
    # a new skill is refused while stopped; unlocking (the dashboard's service) releases it
    _, result = _send(skill, _goal("push", "cuboid_4", (0.0, 0.05), boxes["cuboid_4"]))
    assert wait_future(result).result.error_code == ExecuteSkill.Result.ERROR_ROBOT_STOPPED
    from std_srvs.srv import Trigger
    unlock = probe.create_client(Trigger, "/dashboard_client/unlock_protective_stop")
    assert unlock.wait_for_service(timeout_sec=WAIT_S) and wait_future(unlock.call_async(Trigger.Request())).success
    wait_until(lambda: not server._stopped, timeout=WAIT_S)


def test_cancel_mid_skill_cancels_the_controllers_goal(cell):
    sim, server, probe, skill, boxes = cell
    moving = threading.Event()
    handle, result = _send(skill, _goal("pick_place", "cuboid_3", (0.0, 0.66, 0.0), boxes["cuboid_3"]),
                           lambda m: m.feedback.phase == "approach" and moving.set())
    assert moving.wait(8 * WAIT_S)
    wait_future(handle.cancel_goal_async())
    wrapped = wait_future(result)
    assert wrapped.status == GoalStatus.STATUS_CANCELED
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_CANCELLED
    assert sim.world.trajectory_progress() is None              # the controller holds: no trajectory runs


def test_stale_joint_states_refuse_the_skill(cell):
    sim, server, probe, skill, boxes = cell
    assert LifecycleClient(probe, "sim_arm").transition(Transition.TRANSITION_DEACTIVATE)   # the driver goes quiet
    stale = server.v["stale_joint_states_s"]
    wait_until(lambda: time.monotonic() - server._joints_at > stale + 0.1, timeout=WAIT_S)
    _, result = _send(skill, _goal("push", "cuboid_4", (0.0, 0.05), boxes["cuboid_4"]))
    wrapped = wait_future(result)
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_STALE_JOINT_STATES, wrapped.result.message


def test_the_simulated_controller_refuses_bad_trajectories(cell):
    sim, server, probe, skill, boxes = cell
    client = ActionClient(probe, FollowJointTrajectory, "/scaled_joint_trajectory_controller/follow_joint_trajectory")
    assert client.wait_for_server(timeout_sec=WAIT_S)
    q = np.array(UR5E.home)
    for joints, positions, code in ((("a", "b"), [[0.0, 0.0]], FollowJointTrajectory.Result.INVALID_JOINTS),
                                    (UR5E.joints, [q + [0, 0, 4.0, 0, 0, 0]], FollowJointTrajectory.Result.INVALID_GOAL)):
        goal = FollowJointTrajectory.Goal(trajectory=joint_trajectory_to_msg(joints, positions, [1.0]))
        handle = wait_future(client.send_goal_async(goal))
        wrapped = wait_future(handle.get_result_async())
        assert wrapped.status == GoalStatus.STATUS_ABORTED and wrapped.result.error_code == code, \
            wrapped.result.error_string


def test_a_controller_that_is_not_there_is_controller_rejected(ros):
    ros.add(SimArmNode(context=ros.context, parameter_overrides=FAST))
    server = ros.add(SkillServerNode(context=ros.context, parameter_overrides=[
        Parameter("controller_action", value="/nobody/follow_joint_trajectory"),
        Parameter("controller_timeout_s", value=0.5)]))
    probe = ros.node("arm_probe_nobody")
    LifecycleClient(probe, "sim_arm").activate()
    LifecycleClient(probe, "skill_server").activate()
    skill = ActionClient(probe, ExecuteSkill, "/execute_skill")
    assert skill.wait_for_server(timeout_sec=WAIT_S)
    wait_until(lambda: server._joints_at > 0, timeout=WAIT_S)
    box = OrientedBox([0.32, -0.26, 0.04], [0, 0, 0, 1.0], [0.048, 0.046, 0.058])
    _, result = _send(skill, _goal("push", "cuboid_4", (0.0, 0.05), box))
    wrapped = wait_future(result)
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_CONTROLLER_REJECTED, wrapped.result.message
    assert "/nobody/follow_joint_trajectory is not there" in wrapped.result.message
