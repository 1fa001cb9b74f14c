"""The simulated robot: ROS-free (f2p_sim.robot) and as the ``sim_robot`` lifecycle node over
DDS — reset service, the segmenting camera, the gripper pose and /clock, the ExecuteSkill
action with feedback and cancel, and every refusal with its reason."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2

from f2p_common.interfaces import NO_OBJECT, SkillCall
from f2p_common.vocabulary import OBJECT_CLASSES
from f2p_interfaces.action import ExecuteSkill
from f2p_interfaces.srv import ResetScene
from f2p_ros.actions import ActionClient
from f2p_ros.conversions import box_from_msg, camera_cloud_from_msg, skill_call_to_msg, stamp_to_ns
from f2p_sim.config import load_world_config
from f2p_sim.robot import SimRobot, SimRobotError
from f2p_sim.sim_robot_node import SimRobotNode
from f2p_sim.skills import SkillMonitor
from support.ros import WAIT_S, LifecycleClient, collector, wait_future, wait_until

#: The demo's failing step: the container of transport-3 (seed 1000) carried to table_b.
CARRY = (0.13, 0.501, 0.6)


@pytest.fixture(scope="module")
def robot():
    return SimRobot(load_world_config())


# ---------------------------------------------------------------------------- ROS-free
def test_reset_names_objects_as_perception_will_and_maps_the_goal(robot):
    info = robot.reset_task("transport", 3, 1000)
    assert info.object_ids == ["table_0", "table_1", "bin_2", "cuboid_3", "cuboid_4"]
    assert info.goal == [("inside", "cuboid_3", "bin_2"), ("inside", "cuboid_4", "bin_2"), ("above", "bin_2", "table_1")]
    cloud = robot.camera_cloud()
    assert cloud.frame_id == "base_link" and cloud.height == 1 and len(cloud.points) > 5000
    assert set(np.unique(cloud.instance)) == {NO_OBJECT, 0, 1, 2, 3, 4}
    for k, label in enumerate(info.labels):          # every instance carries its own class
        assert set(cloud.label[cloud.instance == k]) == {OBJECT_CLASSES.index(label)}


def test_the_simulated_clock_runs_on_through_rest_skills_and_resets():
    robot = SimRobot(load_world_config())
    robot.reset_task("transport", 3, 1000)
    t0 = robot.time_ns()
    assert robot.rest(0.2) and robot.time_ns() == t0 + 200_000_000
    assert robot.camera_cloud().stamp_ns == robot.time_ns()
    robot.execute(SkillCall("push", ("cuboid_3",), (0.0, 0.05)))
    t1 = robot.time_ns()
    assert t1 > t0 + 200_000_000                                        # physics time of the skill
    robot.reset_task("transport", 3, 1001)
    assert robot.time_ns() >= t1                                        # a new world, the same clock
    with pytest.raises(ValueError, match="negative"):
        robot.rest(-1.0)


def test_the_camera_pose_is_its_optical_frame_looking_at_the_target(robot):
    from scipy.spatial.transform import Rotation
    pos, quat = robot.camera_pose()
    cam = robot.camera
    forward = Rotation.from_quat(quat).apply([0.0, 0.0, 1.0])              # optical z: where it looks
    to_target = np.subtract(cam.target, cam.eye)
    np.testing.assert_allclose(pos, cam.eye)
    np.testing.assert_allclose(forward, to_target / np.linalg.norm(to_target), atol=1e-9)
    assert Rotation.from_quat(quat).apply([0.0, 1.0, 0.0])[2] < 0            # optical y points down


def test_a_skill_runs_through_physics_and_reports_the_world_after(robot):
    robot.reset_task("transport", 3, 1000)
    phases = []

    class Watch(SkillMonitor):
        def phase(self, name, fraction):
            phases.append(name)
    out = robot.execute(SkillCall("pick_place", ("bin_2",), CARRY), Watch())
    assert out.report.executed and not out.report.stopped
    assert phases == ["approach", "grasp", "transport", "place", "retreat"]
    assert out.observation.object_ids == robot.scene.object_ids
    rel = out.relations
    k = rel.object_ids.index
    assert rel.binary[k("cuboid_3"), k("bin_2"), 8] == 1.0          # the items rode along: inside
    assert rel.binary[k("bin_2"), k("table_1"), 4] == 1.0           # above table_1


def test_a_stop_request_ends_the_motion_early_and_leaves_the_world_settled(robot):
    robot.reset_task("transport", 3, 1000)

    class StopAtTransport(SkillMonitor):
        def __init__(self):
            self.seen = None

        def phase(self, name, fraction):
            self.seen = name

        def stop_requested(self):
            return self.seen == "transport"
    out = robot.execute(SkillCall("pick_place", ("bin_2",), CARRY), StopAtTransport())
    assert out.report.stopped and "stopped on request" in out.report.message
    assert out.relations.binary[out.relations.object_ids.index("bin_2"), 1, 4] == 0.0   # not above table_1


@pytest.mark.parametrize("call, pattern", [
    (lambda: robot_call("pick_place", "mug_9"), "unknown object id 'mug_9'"),
    (lambda: robot_call("pick_place", "table_0"), "needs a movable target"),
    (lambda: robot_call("open_drawer", "bin_2", (0.1,)), "needs a drawer target"),
])
def test_refused_skills_say_why(robot, call, pattern):
    robot.reset_task("transport", 3, 1000)
    with pytest.raises(SimRobotError, match=pattern):
        robot.execute(call())


def test_a_target_named_by_perception_is_found_by_its_box(robot):
    from f2p_common.interfaces import OrientedBox
    info = robot.reset_task("transport", 3, 1000)
    true_bin = info.boxes[info.object_ids.index("bin_2")]
    seen = OrientedBox(true_bin.center + [0.02, -0.03, 0.01], true_bin.orientation, true_bin.size * 0.8)  # a partial view
    out = robot.execute(SkillCall("pick_place", ("bin_7",), CARRY), target_boxes=[seen])
    assert out.report.executed and out.report.target == info.object_ids.index("bin_2")
    far = OrientedBox(true_bin.center + [0.0, 0.0, 0.5], true_bin.orientation, true_bin.size)
    with pytest.raises(SimRobotError, match=r"target 'bin_7': no object of the scene within 0.1 m"):
        robot.execute(SkillCall("pick_place", ("bin_7",), CARRY), target_boxes=[far])


def robot_call(skill, target, params=CARRY):
    return SkillCall(skill, (target,), params)


def test_bad_scenes_are_refused(robot, tmp_path):
    with pytest.raises(SimRobotError, match="unknown task"):
        robot.reset_task("juggle", 3, 0)
    with pytest.raises(SimRobotError, match="n_objects must be one of"):
        robot.reset_task("transport", 4, 0)
    with pytest.raises(SimRobotError, match="cannot read scene file"):
        robot.reset_scene_file(tmp_path / "missing.json")
    from f2p_sim.tasks import make_task
    scene = make_task("organize", 3, 7, robot.backend.cfg).scene.to_dict()
    good = tmp_path / "scene.json"
    good.write_text(json.dumps({**scene, "goal": [["above", "cup_0", "table_b"]]}))
    info = robot.reset_scene_file(good)
    assert info.goal == [("above", info.object_ids[2], info.object_ids[1])]
    bad = tmp_path / "bad_goal.json"
    bad.write_text(json.dumps({**scene, "goal": [["above", "teapot", "table_b"]]}))
    with pytest.raises(SimRobotError, match="goal names 'teapot'"):
        robot.reset_scene_file(bad)


# ---------------------------------------------------------------------------- the node over DDS
@pytest.fixture
def sim(ros):
    node = ros.add(SimRobotNode(context=ros.context, parameter_overrides=[]))
    probe = ros.node("sim_probe")
    LifecycleClient(probe, "sim_robot").activate()
    return node, probe


def test_on_simulated_time_every_stamp_is_physics_time(ros):
    """stamp_with_sim_time (a graph on use_sim_time): the frames and the reset in /clock's time."""
    node = ros.add(SimRobotNode(context=ros.context, parameter_overrides=[Parameter("stamp_with_sim_time", value=True)]))
    probe = ros.node("sim_probe_sim_time")
    LifecycleClient(probe, "sim_robot").activate()
    clouds, got_cloud = collector(probe, PointCloud2, "/camera/points", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
    resp = _reset(probe, task="transport", n_objects=3, seed=1000)
    assert resp.success and got_cloud.wait(WAIT_S)
    seen = len(clouds)
    wait_until(lambda: len(clouds) >= seen + 2)
    reset_ns = resp.stamp.sec * 10**9 + resp.stamp.nanosec
    assert 0 < reset_ns <= stamp_to_ns(clouds[-1].header.stamp) <= node.robot.time_ns() < 10**12   # seconds of physics


def _reset(probe, **fields):
    client = probe.create_client(ResetScene, "/reset_scene")
    assert client.wait_for_service(timeout_sec=WAIT_S)
    return wait_future(client.call_async(ResetScene.Request(**fields)))


def test_node_resets_publishes_the_camera_pose_and_clock(sim):
    node, probe = sim
    clouds, got_cloud = collector(probe, PointCloud2, "/camera/points", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
    clocks, got_clock = collector(probe, Clock, "/clock", 10)
    resp = _reset(probe, task="transport", n_objects=3, seed=1000)
    assert resp.success, resp.message
    assert list(resp.object_ids) == ["table_0", "table_1", "bin_2", "cuboid_3", "cuboid_4"]
    assert [(g.predicate, g.subject_id, g.object_id) for g in resp.goal][-1] == ("above", "bin_2", "table_1")
    assert got_cloud.wait(WAIT_S) and got_clock.wait(WAIT_S)
    wait_until(lambda: len(clocks) >= 3)                   # idle, the clock runs at the camera's pace
    ticks = [c.clock.sec * 10**9 + c.clock.nanosec for c in clocks]
    assert all(b > a for a, b in zip(ticks, ticks[1:]))
    cloud = camera_cloud_from_msg(clouds[-1])
    assert [f.name for f in clouds[-1].fields] == ["x", "y", "z", "rgb", "instance", "label"]
    assert cloud.frame_id == "base_link" and (cloud.instance >= 0).sum() > 1000
    # the true boxes, in object order: each holds its own instance's points (those not hidden)
    assert len(resp.boxes) == len(resp.object_ids)
    for k, b in enumerate(resp.boxes):
        box, pts = box_from_msg(b), cloud.points[cloud.instance == k]
        inside = (np.abs(pts - box.center) <= box.size / 2 + 0.01).all(axis=1)
        assert len(pts) == 0 or inside.mean() > 0.95, (resp.object_ids[k], inside.mean())
    # one time base: on wall time (the default) frames and the reset are stamped with the system
    # clock (/clock stays physics'); the reset's stamp never goes back, frames from then on show the new scene
    stamp = lambda r: r.stamp.sec * 10**9 + r.stamp.nanosec  # noqa: E731
    assert abs(stamp_to_ns(clouds[-1].header.stamp) - time.time_ns()) < 60e9 and ticks[-1] < 10**12
    again = _reset(probe, task="transport", n_objects=3, seed=1001)
    assert again.success and stamp(again) >= max(stamp(resp), stamp_to_ns(clouds[-1].header.stamp))
    bad = _reset(probe, task="transport", n_objects=4, seed=0)
    assert not bad.success and "n_objects" in bad.message
    assert _reset(probe, scene_file="/nonexistent.json").message.startswith("cannot read scene file")


def test_node_publishes_camera_images_their_info_and_the_camera_pose(sim):
    # env.sh sets MUJOCO_GL=egl: this machine has a GL backend, so the images must come
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import DurabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from f2p_ros.conversions import camera_info_from_msg, image_from_msg
    node, probe = sim
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    rgb, got_rgb = collector(probe, Image, "/camera/color/image_raw", qos)
    depth, got_depth = collector(probe, Image, "/camera/depth/image_rect_raw", qos)
    info, got_info = collector(probe, CameraInfo, "/camera/color/camera_info", qos)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pose, got_pose = collector(probe, PoseStamped, "/camera/pose", latched)
    assert got_rgb.wait(WAIT_S) and got_depth.wait(WAIT_S) and got_info.wait(WAIT_S) and got_pose.wait(WAIT_S)
    cam = node.robot.camera
    image, d = image_from_msg(rgb[-1]), image_from_msg(depth[-1])
    assert image.shape == (cam.height, cam.width, 3) and image.std() > 5                # a picture, not a blank
    assert d.shape == (cam.height, cam.width) and 0.3 < float(np.nanmedian(d)) < 3.0      # metres to the table
    assert rgb[-1].header.frame_id == depth[-1].header.frame_id == "camera_color_optical_frame"
    assert camera_info_from_msg(info[-1]) == (cam.width, cam.height, cam.ros_intrinsics)
    p = pose[-1].pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], cam.eye)
    assert pose[-1].header.frame_id == "base_link"


def test_node_executes_a_skill_with_feedback_and_refuses_bad_goals(sim, ros):
    node, probe = sim
    assert _reset(probe, task="transport", n_objects=3, seed=1000).success
    client = ActionClient(probe, ExecuteSkill, "/execute_skill")
    assert client.wait_for_server(timeout_sec=WAIT_S)
    feedback = []
    goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("pick_place", ("bin_2",), CARRY)))
    sent = time.time_ns()
    handle = wait_future(client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback.phase)))
    assert handle.accepted
    res = wait_future(handle.get_result_async(), timeout=3 * WAIT_S).result
    assert res.success and res.error_code == ExecuteSkill.Result.ERROR_NONE, res.message
    assert feedback and set(feedback) <= {"approach", "grasp", "transport", "place", "retreat"}
    after = node.robot.relations()                                   # the world the skill left
    k = after.object_ids.index
    assert after.binary[k("cuboid_3"), k("bin_2"), 8] == 1.0
    assert sent < stamp_to_ns(res.finished) <= time.time_ns()        # when it ended, on the graph's (wall) clock
    # an unknown object: aborted with the reason and its code, the node keeps serving
    bad = wait_future(client.send_goal_async(ExecuteSkill.Goal(skill=skill_call_to_msg(
        SkillCall("pick_place", ("mug_9",), CARRY)))))
    res = wait_future(bad.get_result_async()).result
    assert not res.success and "unknown object id 'mug_9'" in res.message
    assert res.error_code == ExecuteSkill.Result.ERROR_UNKNOWN_TARGET
    # malformed: NaN parameters; a frame this robot does not act in
    nan = ExecuteSkill.Goal()
    nan.skill.skill, nan.skill.target_ids, nan.skill.parameters = "pick_place", ["bin_2"], [float("nan"), 0.0, 0.0]
    res = wait_future(wait_future(client.send_goal_async(nan)).get_result_async()).result
    assert not res.success and "not finite" in res.message and res.error_code == ExecuteSkill.Result.ERROR_INVALID_GOAL
    elsewhere = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("pick_place", ("bin_2",), CARRY)))
    elsewhere.header.frame_id = "odom"
    res = wait_future(wait_future(client.send_goal_async(elsewhere)).get_result_async()).result
    assert not res.success and "frame 'odom'" in res.message and res.error_code == ExecuteSkill.Result.ERROR_INVALID_GOAL


def test_node_cancel_stops_a_running_skill(sim):
    node, probe = sim
    assert _reset(probe, task="transport", n_objects=3, seed=1000).success
    client = ActionClient(probe, ExecuteSkill, "/execute_skill")
    assert client.wait_for_server(timeout_sec=WAIT_S)
    started = threading.Event()
    goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("pick_place", ("bin_2",), CARRY)))
    handle = wait_future(client.send_goal_async(goal, feedback_callback=lambda m: started.set()))
    assert started.wait(WAIT_S)
    # a second goal while one runs is rejected
    assert not wait_future(client.send_goal_async(goal)).accepted
    wait_future(handle.cancel_goal_async())
    wrapped = wait_future(handle.get_result_async(), timeout=3 * WAIT_S)
    from action_msgs.msg import GoalStatus
    assert wrapped.status == GoalStatus.STATUS_CANCELED and wrapped.result.message.startswith("cancelled")
    assert wrapped.result.error_code == ExecuteSkill.Result.ERROR_CANCELLED


# ---------------------------------------------------------------------------- the AFIL controller
@pytest.fixture
def afil_checkpoint(tmp_path):
    """A small random-weight AFIL controller for pick_place, in the real checkpoint format."""
    import torch

    from f2p_afil.checkpoint import save_controller
    from f2p_afil.policy import DAGPolicy, PolicyConfig
    torch.manual_seed(0)
    path = tmp_path / "afil.pt"
    save_controller(path, DAGPolicy(PolicyConfig(hidden=32, embedding=16)), "afil-test", training={"skills": ["pick_place"]})
    return path


def test_node_runs_skills_with_the_afil_controller_feedback_per_chunk_and_cancel(ros, afil_checkpoint):
    from action_msgs.msg import GoalStatus
    from rclpy.parameter import Parameter

    ros.add(SimRobotNode(context=ros.context, parameter_overrides=[
        Parameter("controller", value="afil"), Parameter("afil_checkpoint", value=str(afil_checkpoint))]))
    probe = ros.node("afil_probe")
    LifecycleClient(probe, "sim_robot").activate()
    assert _reset(probe, task="transport", n_objects=3, seed=1000).success
    client = ActionClient(probe, ExecuteSkill, "/execute_skill")
    assert client.wait_for_server(timeout_sec=WAIT_S)
    feedback = []
    goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("pick_place", ("bin_2",), CARRY)))
    handle = wait_future(client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback.phase)))
    res = wait_future(handle.get_result_async(), timeout=6 * WAIT_S).result
    # an untrained controller runs through physics to its step budget and says how the skill ended
    assert res.success and "controller failed" in res.message, res.message
    assert feedback and all(f.startswith("chunk ") for f in feedback)
    assert res.error_code == ExecuteSkill.Result.ERROR_NONE and stamp_to_ns(res.finished) > 0
    # push is not one of this controller's skills: the scripted primitive runs it
    push = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("push", ("cuboid_3",), (0.0, 0.05))))
    phases = []
    res = wait_future(wait_future(client.send_goal_async(push, feedback_callback=lambda m: phases.append(
        m.feedback.phase))).get_result_async(), timeout=3 * WAIT_S).result
    assert res.success and "push" in phases
    # a cancel stops it between chunks: the jaws open, the gripper parks
    started = threading.Event()
    handle = wait_future(client.send_goal_async(goal, feedback_callback=lambda m: started.set()))
    assert started.wait(WAIT_S)
    wait_future(handle.cancel_goal_async())
    wrapped = wait_future(handle.get_result_async(), timeout=3 * WAIT_S)
    assert wrapped.status == GoalStatus.STATUS_CANCELED and "stopped on request" in wrapped.result.message


def test_a_corrupt_afil_checkpoint_fails_configure_with_the_reason(ros, afil_checkpoint):
    from lifecycle_msgs.msg import Transition
    from rclpy.parameter import Parameter

    data = afil_checkpoint.read_bytes()
    afil_checkpoint.write_bytes(data[:-100])
    node = ros.add(SimRobotNode(context=ros.context, parameter_overrides=[
        Parameter("controller", value="afil"), Parameter("afil_checkpoint", value=str(afil_checkpoint))]))
    probe = ros.node("afil_bad_probe")
    assert not LifecycleClient(probe, "sim_robot").transition(Transition.TRANSITION_CONFIGURE)
    assert node.robot is None
