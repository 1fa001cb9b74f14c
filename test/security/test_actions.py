"""Red team, actions and sensors (issue 43): no goal, scene file or camera frame takes a node down.

Over DDS against the real ``task_executor`` and ``sim_robot`` nodes: a RunTask goal over the
executor's ``max_request_*`` limits is refused with ERROR_TOO_LARGE before anything runs; a bug
in an execute callback aborts the goal with ERROR_INTERNAL and a message (rclpy alone answers it
with an empty result, error_code 0) and the node serves the next goal; ExecuteSkill refuses more
target boxes than targets; ``reset_scene`` does not read a huge file; perception refuses a
camera frame over ``max_cloud_points`` before converting it.
"""
from __future__ import annotations

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from rclpy.parameter import Parameter

from f2p_common.interfaces import CameraCloud, PointCloudError, SkillCall
from f2p_executor import task_executor_node
from f2p_executor.task_executor_node import TaskExecutorNode
from f2p_executor.task_runner import ErrorCode, RunnerConfig, TaskError
from f2p_interfaces.action import ExecuteSkill, RunTask
from f2p_interfaces.msg import OrientedBox, Relation, SkillCall as SkillCallMsg
from f2p_interfaces.srv import ResetScene
from f2p_ros.actions import ActionClient
from f2p_ros.conversions import camera_cloud_to_msg, skill_call_to_msg
from f2p_sim.sim_robot_node import SimRobotNode
from support.ros import WAIT_S, LifecycleClient, wait_future


def _send(client, goal):
    handle = wait_future(client.send_goal_async(goal))
    assert handle.accepted
    return wait_future(handle.get_result_async(), timeout=4 * WAIT_S)


def test_the_error_codes_of_the_runner_are_run_tasks():
    for code in ErrorCode:
        assert getattr(RunTask.Result, f"ERROR_{code.name}") == code.value


def test_request_limits_name_every_size_over_its_limit():
    cfg = RunnerConfig()
    cfg.check_request(32, 8, 10, 4096)
    with pytest.raises(TaskError, match="goal literals 33 > 32, skeleton steps 300 > 8") as err:
        cfg.check_request(33, 300, 0, 0)
    assert err.value.code == ErrorCode.TOO_LARGE


@pytest.fixture
def executor(ros):
    node = ros.add(TaskExecutorNode(context=ros.context, parameter_overrides=[
        Parameter("observe_timeout_s", value=0.5)]))
    probe = ros.node("red_team_executor")
    LifecycleClient(probe, "task_executor").activate()
    run = ActionClient(probe, RunTask, "/run_task")
    assert run.wait_for_server(timeout_sec=WAIT_S)
    return node, run


def test_oversized_run_task_goals_are_refused_before_anything_runs(executor):
    node, run = executor
    literal = Relation(predicate="above", subject_id="bin_2", object_id="table_1")
    for goal, pattern in ((RunTask.Goal(goal=[literal] * 33), "goal literals 33 > 32"),
                          (RunTask.Goal(goal=[literal], skeleton=[SkillCallMsg(skill="nonsense")] * 300),
                           "skeleton steps 300 > 8"),
                          (RunTask.Goal(goal=[literal], max_replans=2 ** 32 - 1), "max_replans 4294967295 > 10"),
                          (RunTask.Goal(goal=[literal], task_description="x" * 5000),
                           "task_description characters 5000 > 4096")):
        wrapped = _send(run, goal)
        assert wrapped.status == GoalStatus.STATUS_ABORTED
        assert wrapped.result.error_code == RunTask.Result.ERROR_TOO_LARGE and pattern in wrapped.result.message, \
            wrapped.result.message
    # within the limits the goal runs: here it waits for a camera that is not there
    wrapped = _send(run, RunTask.Goal(goal=[literal]))
    assert wrapped.result.error_code == RunTask.Result.ERROR_NO_OBSERVATION, wrapped.result.message


def test_a_bug_in_run_task_is_an_internal_error_and_the_executor_serves_on(executor, monkeypatch):
    node, run = executor

    def broken(*_args, **_kwargs):
        raise KeyError("a bug")
    monkeypatch.setattr(task_executor_node, "stage_to_msg", broken)     # used by every progress report
    wrapped = _send(run, RunTask.Goal(goal=[Relation(predicate="above", subject_id="bin_2", object_id="table_1")]))
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.error_code == RunTask.Result.ERROR_INTERNAL and "KeyError" in wrapped.result.message
    monkeypatch.undo()
    wrapped = _send(run, RunTask.Goal(goal=[Relation(predicate="above", subject_id="bin_2", object_id="table_1")]))
    assert wrapped.result.error_code == RunTask.Result.ERROR_NO_OBSERVATION, wrapped.result.message


@pytest.fixture
def sim(ros):
    node = ros.add(SimRobotNode(context=ros.context))
    probe = ros.node("red_team_sim")
    LifecycleClient(probe, "sim_robot").activate()
    skill = ActionClient(probe, ExecuteSkill, "/execute_skill")
    reset = probe.create_client(ResetScene, "/reset_scene")
    assert skill.wait_for_server(timeout_sec=WAIT_S) and reset.wait_for_service(timeout_sec=WAIT_S)
    return node, skill, reset


def _push():
    return ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("push", ("cuboid_3",), (0.0, 0.05))))


def test_execute_skill_refuses_extra_boxes_and_answers_a_bug_as_internal_error(sim, monkeypatch):
    node, skill, _ = sim
    goal = _push()
    goal.target_boxes = [OrientedBox()] * 1000
    wrapped = _send(skill, goal)
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_INVALID_GOAL
    assert "1000 target boxes for 1 target(s)" in wrapped.result.message

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(node.robot, "execute", broken)
    wrapped = _send(skill, _push())
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_INTERNAL, wrapped.result.message
    assert "ZeroDivisionError" in wrapped.result.message
    monkeypatch.undo()
    wrapped = _send(skill, _push())                   # the lock was released: the next skill runs
    assert wrapped.result.success, wrapped.result.message


def test_reset_scene_does_not_read_a_huge_file(sim, tmp_path):
    _, _, reset = sim
    huge = tmp_path / "scene.json"
    with open(huge, "wb") as f:
        f.truncate(2 << 20)                           # sparse: 2 MiB of zeros, nothing on disk
    resp = wait_future(reset.call_async(ResetScene.Request(scene_file=str(huge))))
    assert not resp.success and "more than the 1048576 a scene file may have" in resp.message, resp.message


def test_perception_refuses_a_frame_over_max_cloud_points(ros):
    from f2p_perception.perception_node import PerceptionNode
    node = ros.add(PerceptionNode(context=ros.context, parameter_overrides=[Parameter("max_cloud_points", value=1000)]))
    LifecycleClient(ros.node("red_team_perception"), "perception").activate()
    big = CameraCloud(np.zeros((1001, 3), np.float32), frame_id="base_link")
    with pytest.raises(PointCloudError, match="1001 points, more than max_cloud_points 1000"):
        node.segment(camera_cloud_to_msg(big))
