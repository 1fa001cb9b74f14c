"""Perception: the labelled_cloud segmentation backend (ROS-free) and the ``perception`` lifecycle
node over DDS — camera cloud in, SegmentedScene out, bad clouds and a silent camera reported on
/diagnostics while the node keeps running."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from f2p_common.interfaces import CameraCloud, PointCloudError
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_perception.perception_node import PerceptionNode
from f2p_perception.segmentation import (SEGMENTERS, LabelledCloudSegmenter, SensorFrame, limit_points,
                                         transform_cloud)
from f2p_ros.conversions import camera_cloud_to_msg, scene_from_msg, xyz_to_cloud
from f2p_sim.config import load_world_config
from f2p_sim.robot import SimRobot
from support.ros import WAIT_S, LifecycleClient, collector

RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module")
def sim_cloud():
    robot = SimRobot(load_world_config())
    info = robot.reset_task("organize", 5, 3)
    return info, robot.camera_cloud(), robot.observation()


# ---------------------------------------------------------------------------- the backend
def test_labelled_cloud_backend_gives_the_simulators_segments(sim_cloud):
    info, cloud, truth = sim_cloud
    objects = LabelledCloudSegmenter().segment(SensorFrame(cloud))
    assert [o.id for o in objects] == info.object_ids and [o.label for o in objects] == info.labels
    for obj, ref in zip(objects, truth.objects):
        assert len(obj.points) == len(ref.points) or len(ref.points) == 0 or len(obj.points) > 0
        assert obj.score == 1.0 and obj.colors is not None
        assert np.all(obj.points >= obj.box.center - obj.box.size / 2 - 1e-5)


def test_labelled_cloud_backend_drops_nan_and_tiny_instances_and_refuses_unlabelled_clouds():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (40, 3)).astype(np.float32)
    pts[:5] = np.nan
    inst = np.array([0] * 30 + [1] * 5 + [-1] * 5)
    cloud = CameraCloud(pts, instance=inst, label=np.where(inst >= 0, 6, -1))
    objects = LabelledCloudSegmenter(min_points=10).segment(SensorFrame(cloud))
    assert [(o.id, len(o.points)) for o in objects] == [("cup_0", 25)]          # instance 1 has 5 points: left out
    with pytest.raises(PointCloudError, match="needs a cloud with 'instance' and 'label'"):
        LabelledCloudSegmenter().segment(SensorFrame(CameraCloud(pts)))
    mixed = CameraCloud(pts, instance=np.zeros(40, int), label=np.array([6] * 20 + [7] * 20))
    with pytest.raises(PointCloudError, match="one class per instance"):
        LabelledCloudSegmenter().segment(SensorFrame(mixed))
    with pytest.raises(ValueError, match="unknown segmentation backend 'magic'"):
        SEGMENTERS.make("magic")


def test_limit_points_thins_evenly_and_keeps_the_box_of_all_points():
    from f2p_common.interfaces import SegmentedObject
    pts = np.stack([np.arange(1000.0) / 1000, np.zeros(1000), np.zeros(1000)], 1).astype(np.float32)
    colors = np.repeat(np.arange(1000)[:, None] % 256, 3, 1).astype(np.uint8)
    big, small = SegmentedObject("table_0", "table", pts, colors=colors), SegmentedObject("cup_1", "cup", pts[:50])
    thinned, same = limit_points([big, small], 100)
    assert len(thinned.points) == 100 and thinned.points[0, 0] == 0.0 and thinned.points[-1, 0] == pts[-1, 0]
    assert thinned.box == big.box and (thinned.colors[:, 0] == (thinned.points[:, 0] * 1000).round() % 256).all()
    assert same is small
    with pytest.raises(ValueError, match="max_points must be >= 1"):
        limit_points([big], 0)


def test_transform_cloud_moves_a_camera_frame_cloud_into_the_base_frame():
    pts = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], np.float32)
    quarter = [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]           # 90 degrees about z
    out = transform_cloud(CameraCloud(pts, frame_id="camera"), [1.0, 2.0, 3.0, *quarter], "base_link")
    assert out.frame_id == "base_link"
    np.testing.assert_allclose(out.points, [[1.0, 2.0, 4.0], [1.0, 3.0, 3.0]], atol=1e-6)
    with pytest.raises(ValueError, match="unit quaternion"):
        transform_cloud(CameraCloud(pts), [0, 0, 0, 0, 0, 0, 2], "base_link")


# ---------------------------------------------------------------------------- the node over DDS
def _node(ros, **params):
    from rclpy.parameter import Parameter
    node = ros.add(PerceptionNode(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()]))
    probe = ros.node("perception_probe")
    LifecycleClient(probe, "perception").activate()
    pub = probe.create_publisher(PointCloud2, "/camera/points", RELIABLE)
    return node, probe, pub


def _diag_levels(probe):
    return collector(probe, DiagnosticArray, "/diagnostics", 50, lambda m: m.status[0].name.startswith("perception"))


def test_node_publishes_the_segmented_scene_of_each_cloud(ros, sim_cloud):
    info, cloud, _ = sim_cloud
    node, probe, pub = _node(ros)
    scenes, got = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    from support.ros import wait_until
    wait_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(camera_cloud_to_msg(cloud))
    assert got.wait(WAIT_S)
    scene = scene_from_msg(scenes[-1])
    assert scene.object_ids == info.object_ids and scene.frame_id == "base_link"
    assert scene.source == "camera:labelled_cloud" and scene.stamp_ns == cloud.stamp_ns


def test_node_with_the_geometric_backend_segments_a_plain_depth_cloud(ros, sim_cloud):
    # what a robot's RGB-D driver sends: no instance or label fields
    from support.ros import wait_until
    info, cloud, _ = sim_cloud
    node, probe, pub = _node(ros, backend="geometric")
    scenes, got = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    wait_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(xyz_to_cloud(cloud.points[np.isfinite(cloud.points).all(axis=1)], frame_id="base_link"))
    assert got.wait(WAIT_S)
    scene = scene_from_msg(scenes[-1])
    assert scene.source == "camera:geometric"
    # every object it reports is one of the scene's classes; it may miss one that is barely seen
    assert not Counter(scene.labels) - Counter(info.labels) and len(scene.labels) >= len(info.labels) - 1, \
        (scene.labels, info.labels)
    assert len(set(scene.object_ids)) == len(scene.object_ids)
    # two of the largest cuboids pushed together: one segment fitting no class, published and
    # said on /diagnostics
    diags, _ = _diag_levels(probe)
    a = np.stack(np.meshgrid(np.arange(0.0, 0.24, 0.005), np.arange(0.0, 0.06, 0.005)), -1).reshape(-1, 2)
    top = np.column_stack([0.9 + a[:, 0], a[:, 1], np.full(len(a), 0.76)])
    table = np.stack(np.meshgrid(np.arange(0.6, 1.4, 0.008), np.arange(-0.3, 0.3, 0.008)), -1).reshape(-1, 2)
    table = np.column_stack([table, np.full(len(table), 0.7)])
    table = table[~((table[:, 0] > 0.89) & (table[:, 0] < 1.15) & (table[:, 1] > -0.01) & (table[:, 1] < 0.07))]
    b = np.stack(np.meshgrid(np.arange(0.0, 0.06, 0.005), np.arange(0.0, 0.06, 0.005)), -1).reshape(-1, 2)
    front = np.column_stack([np.full(len(b), 0.9), b[:, 0], 0.7 + b[:, 1]])
    pub.publish(xyz_to_cloud(np.vstack([table, top, front]).astype(np.float32), frame_id="base_link"))
    from support.ros import wait_until as until
    until(lambda: any(m.status[0].level == DiagnosticStatus.WARN and "fit no class" in m.status[0].message
                      for m in diags))


def test_node_with_the_convex_backend_parts_stacked_boxes_in_a_camera_frame_cloud(ros):
    # a depth camera's cloud in its own frame, placed by camera_pose: the convex backend sees
    # from there (its viewpoint) and parts a box standing on another
    from support.raycast import INTRINSICS, box, render
    from support.ros import wait_until
    depth, _, pose = render([box((0.9, 0.0, 0.80), (0.24, 0.16, 0.10)), box((0.9, 0.0, 0.89), (0.12, 0.10, 0.08))])
    fx, fy, cx, cy = INTRINSICS
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
    points = np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], -1).reshape(-1, 3).astype(np.float32)
    node, probe, pub = _node(ros, backend="convex", camera_pose=list(pose))
    scenes, got = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    wait_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(camera_cloud_to_msg(CameraCloud(points, frame_id="camera_color_optical_frame", height=depth.shape[0])))
    assert got.wait(WAIT_S)
    scene = scene_from_msg(scenes[-1])
    assert scene.source == "camera:convex" and scene.frame_id == "base_link"
    tops = sorted(float(o.points[:, 2].max()) for o in scene.objects if o.label != "table")
    assert tops == pytest.approx([0.85, 0.93], abs=0.01) and scene.labels.count("table") == 1
    # the same cloud already in base_link: the viewpoint still comes from camera_pose
    got.clear()
    moved = transform_cloud(CameraCloud(points, frame_id="camera"), pose, "base_link")
    pub.publish(camera_cloud_to_msg(moved))
    assert got.wait(WAIT_S)
    assert len(scene_from_msg(scenes[-1]).objects) == 3


def test_node_takes_every_cloud_of_a_burst_and_segments_the_newest(ros, sim_cloud):
    # the subscription keeps up with the camera; the worker segments the newest cloud at most
    # max_rate_hz times a second and counts the ones it skipped
    from support.ros import wait_until
    info, cloud, _ = sim_cloud
    node, probe, pub = _node(ros, max_rate_hz=1.0, max_object_points=20)
    scenes, _ = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    wait_until(lambda: pub.get_subscription_count() > 0)
    burst = 8
    for k in range(burst):
        msg = camera_cloud_to_msg(cloud)
        msg.header.stamp.sec = k + 1
        pub.publish(msg)
    wait_until(lambda: node.received == burst and any(m.header.stamp.sec == burst for m in scenes))
    assert node.accepted + node.skipped == burst and node.skipped >= burst - 3       # 1 Hz: mostly skipped
    last = scene_from_msg(next(m for m in scenes if m.header.stamp.sec == burst))
    assert max(len(o.points) for o in last.objects) == 20 and last.object_ids == info.object_ids


def test_node_reports_bad_clouds_and_keeps_running(ros, sim_cloud):
    info, cloud, _ = sim_cloud
    node, probe, pub = _node(ros)
    diags, _ = _diag_levels(probe)
    scenes, got_scene = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    errors = lambda: [m.status[0].message for m in diags if m.status[0].level == DiagnosticStatus.ERROR]  # noqa: E731
    from support.ros import wait_until
    wait_until(lambda: pub.get_subscription_count() > 0)
    overlap = camera_cloud_to_msg(cloud)
    for f in overlap.fields[:3]:
        f.offset = 0                                                                        # x, y, z on one float
    bad = [xyz_to_cloud(np.zeros((5, 3), np.float32), frame_id="base_link"),                # no labels
           overlap, camera_cloud_to_msg(CameraCloud(cloud.points, None, cloud.instance, cloud.label, "camera_link"))]
    for k, msg in enumerate(bad, 1):          # one at a time: the worker segments the newest cloud only
        pub.publish(msg)
        wait_until(lambda: len(errors()) >= k)
    msgs = errors()
    assert any("needs a cloud with 'instance' and 'label'" in m for m in msgs)
    assert any("overlap" in m for m in msgs)
    assert any("frame 'camera_link' is unknown: not 'base_link', not in tf, not the camera_frame" in m for m in msgs)
    pub.publish(camera_cloud_to_msg(cloud))                                                # still serving
    assert got_scene.wait(WAIT_S) and node.rejected == 3


def test_a_frame_in_more_pieces_than_max_segments_is_refused_with_why(ros, sim_cloud):
    """A frame that came apart (a scene still settling after a reset, unfiltered noise) is no view
    to act on: refused on /diagnostics, not published (issue 45 part 6)."""
    from f2p_common.interfaces import SegmentedObject
    from f2p_perception.segmentation import check_pieces
    pieces = [SegmentedObject(f"cuboid_{k}", "cuboid", np.zeros((20 if k % 2 else 80, 3), np.float32)) for k in range(6)]
    check_pieces(pieces, 6)
    with pytest.raises(PointCloudError, match="in 6 pieces [(]3 of fewer than 50 points[)], more than max_segments 5"):
        check_pieces(pieces, 5)
    info, cloud, _ = sim_cloud                             # organize-5: 7 objects
    node, probe, pub = _node(ros, max_segments=len(info.object_ids) - 1)
    diags, _ = _diag_levels(probe)
    from support.ros import wait_until
    wait_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(camera_cloud_to_msg(cloud))
    wait_until(lambda: any(m.status[0].level == DiagnosticStatus.ERROR for m in diags))
    error = next(m.status[0].message for m in diags if m.status[0].level == DiagnosticStatus.ERROR)
    assert f"in {len(info.object_ids)} pieces" in error and "not published" in error
    assert (node.rejected, node.accepted) == (1, 0)


def test_node_warns_when_the_camera_goes_silent(ros):
    node, probe, pub = _node(ros, max_age_s=0.2)
    diags, _ = _diag_levels(probe)
    from support.ros import wait_until
    wait_until(lambda: any(m.status[0].level == DiagnosticStatus.WARN and "no camera cloud for" in m.status[0].message
                           for m in diags))


def test_bad_parameters_fail_configure(ros):
    from lifecycle_msgs.msg import Transition
    from rclpy.parameter import Parameter
    ros.add(PerceptionNode(context=ros.context, parameter_overrides=[Parameter("camera_pose", value=[1.0, 2.0])]))
    lc = LifecycleClient(ros.node("perception_probe"), "perception")
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)


# ---------------------------------------------------------------------------- RGB-D input over DDS
@pytest.fixture(scope="module")
def rgbd_view():
    """A rendered organize scene: scene info, rgb, depth, CameraInfo intrinsics and the camera pose."""
    from f2p_sim.observation import ImageRenderer
    robot = SimRobot(load_world_config())
    info = robot.reset_task("organize", 5, 3)
    renderer = ImageRenderer(robot.backend, robot.camera)
    try:
        images = renderer.render()
    finally:
        renderer.close()
    pos, quat = robot.camera_pose()
    return info, images, robot.camera.ros_intrinsics, (*pos, *quat)


def _rgbd_messages(images, intrinsics, stamp_s, depth=None, frame="camera_color_optical_frame"):
    from f2p_ros.conversions import camera_info_to_msg, image_to_msg
    ns = int(stamp_s * 1e9)
    d = images["depth"] if depth is None else depth
    return {"rgb": image_to_msg(images["rgb"], frame, ns), "depth": image_to_msg(d, frame, ns),
            "info": camera_info_to_msg(640, 480, intrinsics, frame, ns)}


def _rgbd_node(ros, **params):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image
    node = ros.add(PerceptionNode(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in {"backend": "geometric", "input": "rgbd", **params}.items()]))
    probe = ros.node("perception_probe")
    LifecycleClient(probe, "perception").activate()
    pubs = {"rgb": probe.create_publisher(Image, "/camera/color/image_raw", RELIABLE),
            "depth": probe.create_publisher(Image, "/camera/depth/image_rect_raw", RELIABLE),
            "info": probe.create_publisher(CameraInfo, "/camera/color/camera_info", RELIABLE)}
    from support.ros import wait_until
    wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))
    return node, probe, pubs


def test_node_segments_synchronised_rgbd_frames_placed_by_the_camera_pose_topic(ros, rgbd_view):
    from geometry_msgs.msg import PoseStamped
    from f2p_ros.conversions import ns_to_stamp
    info, images, k, pose = rgbd_view
    node, probe, pubs = _rgbd_node(ros, camera_pose_topic="/camera/pose")
    pose_pub = probe.create_publisher(PoseStamped, "/camera/pose", LATCHED)
    msg = PoseStamped()
    msg.header.frame_id, msg.header.stamp = "base_link", ns_to_stamp(0)
    (msg.pose.position.x, msg.pose.position.y, msg.pose.position.z, msg.pose.orientation.x, msg.pose.orientation.y,
     msg.pose.orientation.z, msg.pose.orientation.w) = pose
    pose_pub.publish(msg)
    from support.ros import wait_until
    wait_until(lambda: node._pose_msg is not None)
    scenes, got = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    frame = _rgbd_messages(images, k, 5.0)
    for name in ("depth", "info", "rgb"):                         # any order: matched by stamp
        pubs[name].publish(frame[name])
    assert got.wait(WAIT_S)
    scene = scene_from_msg(scenes[-1])
    assert scene.source == "camera:geometric" and scene.frame_id == "base_link" and scene.stamp_ns == int(5e9)
    assert not Counter(scene.labels) - Counter(info.labels) and len(scene.labels) >= len(info.labels) - 1, \
        (scene.labels, info.labels)
    for o in scene.objects:                                      # in the base frame: on the tables (0.45 m)
        if o.label not in ("table", "shelf"):
            assert o.points[:, 2].min() > 0.4, o.id


def test_node_reports_bad_rgbd_frames_and_a_missing_camera_info_and_keeps_running(ros, rgbd_view):
    info, images, k, pose = rgbd_view
    node, probe, pubs = _rgbd_node(ros, max_age_s=0.5)           # no pose topic, no camera_pose: no transform
    diags, _ = _diag_levels(probe)
    scenes, got_scene = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    errors = lambda: [m.status[0].message for m in diags if m.status[0].level == DiagnosticStatus.ERROR]  # noqa: E731
    from support.ros import wait_until

    def send(frame):
        for name, m in frame.items():
            pubs[name].publish(m)
    send(_rgbd_messages(images, k, 1.0))
    wait_until(lambda: any("no transform from the camera's frame 'camera_color_optical_frame'" in m for m in errors()))
    node._camera_pose = list(pose)                                # as if the parameter had been set
    send(_rgbd_messages(images, k, 2.0, depth=images["depth"][::2, ::2]))
    wait_until(lambda: any("registered to the colour camera" in m for m in errors()))
    send(_rgbd_messages(images, k, 3.0, depth=np.full((480, 640), np.nan, np.float32)))
    wait_until(lambda: any("no valid return" in m for m in errors()))
    for t in (4.0, 4.1, 4.2):                                     # colour and depth, never their CameraInfo
        frame = _rgbd_messages(images, k, t)
        pubs["rgb"].publish(frame["rgb"])
        pubs["depth"].publish(frame["depth"])
    wait_until(lambda: any(m.status[0].level == DiagnosticStatus.WARN and "/camera/color/camera_info" in
                           m.status[0].message for m in diags))
    assert node.rejected == 3 and not got_scene.is_set()
    send(_rgbd_messages(images, k, 5.0))                          # still serving
    assert got_scene.wait(WAIT_S) and scene_from_msg(scenes[-1]).stamp_ns == int(5e9)


@pytest.mark.parametrize("params", [{"backend": "sam", "input": "rgbd"},                  # no checkpoint
                                    {"backend": "yolo_seg", "model_path": "/nonexistent.pt", "input": "rgbd"}])
def test_image_backends_without_their_model_fail_configure(ros, params):
    from lifecycle_msgs.msg import Transition
    from rclpy.parameter import Parameter
    ros.add(PerceptionNode(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    lc = LifecycleClient(ros.node("perception_probe"), "perception")
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)


def _rendered_cloud(boxes, stamp_s: int):
    """(a PointCloud2 in the camera's optical frame of ``boxes`` on a table, ray-cast; the camera's
    pose in the base frame)."""
    from support.raycast import INTRINSICS, render
    fx, fy, cx, cy = INTRINSICS
    depth, _, pose = render(boxes)
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
    pts = np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], -1).reshape(-1, 3).astype(np.float32)
    msg = camera_cloud_to_msg(CameraCloud(pts, frame_id="camera_color_optical_frame", height=depth.shape[0]))
    msg.header.stamp.sec = stamp_s
    return msg, pose


def test_reset_tracking_gives_a_replaced_world_new_ids(ros):
    # a geometric scene, then the world replaced by one with its boxes where the old ones stood:
    # without reset_tracking the tracker would hand them the old ids; after it, new ones
    from std_srvs.srv import Trigger

    from support.raycast import box
    from support.ros import wait_future, wait_until
    cloud = _rendered_cloud

    first, pose = cloud([box((0.9, 0.0, 0.78), (0.06, 0.06, 0.06))], 1)
    node, probe, pub = _node(ros, backend="geometric", camera_pose=list(pose), depth_median=0)
    reset = probe.create_client(Trigger, "/reset_tracking")
    scenes, got = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    wait_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(first)
    assert got.wait(WAIT_S)
    before = set(scene_from_msg(scenes[-1]).object_ids)
    assert reset.wait_for_service(timeout_sec=WAIT_S)
    answer = wait_future(reset.call_async(Trigger.Request()))
    assert answer.success and "restarted" in answer.message
    got.clear()
    second, _ = cloud([box((0.9, 0.02, 0.78), (0.06, 0.06, 0.06))], 2)
    pub.publish(second)
    assert got.wait(WAIT_S)
    after = set(scene_from_msg(scenes[-1]).object_ids)
    assert len(after) == len(before) == 2 and after.isdisjoint(before)     # the table and the box: new ids


def test_median_depth_smooths_a_noisy_organised_cloud_along_its_rays():
    from f2p_perception.segmentation import median_depth
    from support.raycast import INTRINSICS, box, render
    fx, fy, cx, cy = INTRINSICS
    depth, _, pose = render([box((0.9, 0.0, 0.78), (0.1, 0.1, 0.06))], noise=0.004, seed=3)
    depth[::7, ::5] = np.nan                                    # missing returns
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
    pts = np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], -1).reshape(-1, 3).astype(np.float32)
    from f2p_perception.segmentation import transform_cloud
    cloud = transform_cloud(CameraCloud(pts, frame_id="camera", height=depth.shape[0]), pose, "base_link")
    frame = SensorFrame(cloud, camera_pose=tuple(pose))
    smooth = median_depth(frame, 5).cloud.points
    table = np.isfinite(cloud.points[:, 2]) & (np.abs(cloud.points[:, 2] - 0.75) < 0.02)
    assert np.nanstd(smooth[table, 2]) < 0.5 * np.nanstd(cloud.points[table, 2])
    assert np.array_equal(np.isnan(smooth[:, 2]), np.isnan(cloud.points[:, 2]))     # holes stay holes
    # at the box's edges the median would jump to the table behind: those pixels keep their return
    assert np.nanmax(np.linalg.norm(smooth - cloud.points, axis=1)) <= 0.02 + 1e-5
    assert median_depth(frame, 0) is frame and median_depth(SensorFrame(cloud), 5).cloud is cloud   # off; no viewpoint
    with pytest.raises(ValueError, match="3 or 5"):
        median_depth(frame, 7)


def test_expected_motion_lets_a_carried_object_keep_its_id(ros):
    """The executor says a skill is carrying the box 0.3 m left (expected_motion): in the next
    frame the box is there, taller than before (read with what it touched), beside a new box of
    its old size — the one the tracker would otherwise take for it."""
    from f2p_interfaces.msg import ExpectedMotion

    from f2p_ros.conversions import expected_motion_to_msg
    from support.raycast import box
    from support.ros import wait_until
    cloud = _rendered_cloud

    still, pose = cloud([box((0.9, -0.25, 0.79), (0.08, 0.08, 0.08))], 1)
    node, probe, pub = _node(ros, backend="geometric", camera_pose=list(pose), depth_median=0)
    hints = probe.create_publisher(ExpectedMotion, "/expected_motion", 10)
    scenes, got = collector(probe, SegmentedSceneMsg, "/segmented_scene", LATCHED)
    wait_until(lambda: pub.get_subscription_count() > 0 and hints.get_subscription_count() > 0)
    for stamp in (1, 2):                                         # seen twice: a confirmed object
        got.clear()
        pub.publish(cloud([box((0.9, -0.25, 0.79), (0.08, 0.08, 0.08))], stamp)[0])
        assert got.wait(WAIT_S)
    (carried,) = [o for o in scene_from_msg(scenes[-1]).objects if o.label != "table"]
    hints.publish(expected_motion_to_msg("cuboid_99", (0.0, 0.3, 0.0), "base_link"))      # no such object: ignored
    hints.publish(expected_motion_to_msg(carried.id, (0.0, 0.3, 0.0), "base_link"))
    wait_until(lambda: any(t.id == carried.id and t.expected is not None for t in node._tracker.tracks))
    got.clear()
    pub.publish(cloud([box((0.9, 0.05, 0.8), (0.08, 0.08, 0.1)), box((0.9, -0.4, 0.79), (0.08, 0.08, 0.08))], 3)[0])
    assert got.wait(WAIT_S)
    after = {o.id: o for o in scene_from_msg(scenes[-1]).objects if o.label != "table"}
    assert carried.id in after and after[carried.id].box.center[1] == pytest.approx(0.05, abs=0.03), after
    assert len(after) == 2
