"""tf on this machine: the overlay's tf2_msgs and control_msgs are wire-identical to upstream
(RIHS01 type hashes), and f2p_ros.tf's listener and publisher speak tf over DDS."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ament_index_python.packages import get_package_share_directory
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys import get_types_from_msg
from scipy.spatial.transform import Rotation

from f2p_common.frames import ExtrapolationError, UnknownFrameError
from f2p_ros.conversions import transform_to_msg
from f2p_ros.tf import TransformListener, TransformPublisher
from support.ros import wait_until

#: RIHS01 hashes of upstream's definitions (control_msgs 6.8.0 at 13dacdd8, tf2_msgs 0.39.1),
#: computed by rosbags from upstream's own files, independently of rosidl; TFMessage's is also
#: the one in rosbags' Kilted and Jazzy typestores. A type the ROS install provides must hash the same.
UPSTREAM = {
    "control_msgs/action/FollowJointTrajectory_Feedback":
        "RIHS01_0bb018d181bdc6384dd75365480967bd1d6eaee4ef3dd597c64cd0b8bdc10867",
    "control_msgs/action/FollowJointTrajectory_Goal":
        "RIHS01_8a9060704b269608f5a340934cc26e66869dd14bdac29e2e7fd9ec8b9882d205",
    "control_msgs/action/FollowJointTrajectory_Result":
        "RIHS01_8002e99ed2c14c6faa522f2a93c26d744c5982f254f9e98ff9c6f19789bdb220",
    "control_msgs/action/GripperCommand_Feedback":
        "RIHS01_8f7c520077bab528bb9161ee3b83c81eee1f8aecadb8922ce82c79d667a819c4",
    "control_msgs/action/GripperCommand_Goal":
        "RIHS01_607d9f41eb241e1922e90f02125e87ae6bfb78f7f64a71dc92630263d01f8b6d",
    "control_msgs/action/GripperCommand_Result":
        "RIHS01_bf512d5aa6a0e4fe4d8be22b2ec4a1973c3d250fa1f65e47450322c25c45c0a0",
    "control_msgs/action/ParallelGripperCommand_Feedback":
        "RIHS01_ed6f7c4e5aea7f960432663c0e762e001a0a1f5cc0130d126e60041412d0543c",
    "control_msgs/action/ParallelGripperCommand_Goal":
        "RIHS01_412807b6b6acf2bf406fb0cf3b5c8f84286cd4e4d425734155aa1ff41caa0063",
    "control_msgs/action/ParallelGripperCommand_Result":
        "RIHS01_51acbcd62aa44097d3877c506eab1146856fa8768628ffbe102c1699152d2afa",
    "control_msgs/msg/GripperCommand":
        "RIHS01_57eb8f326c9889ca8bb34ead82cc94cc09bf6bc5c3b6c09546dca3a00b589890",
    "control_msgs/msg/JointComponentTolerance":
        "RIHS01_739ea7566931944d33830fa10f1bf5e7a7fbdc3172bce7a7eaac642bd6e3ffa4",
    "control_msgs/msg/JointTolerance":
        "RIHS01_c254f9cece0f3b733017b6990fd46d1326e25242d6b8844398c97d9a88e7d648",
    "control_msgs/msg/JointTrajectoryControllerState":
        "RIHS01_51d8dd89cc624cbe9daaeeb4d80d6de9b86168ffdc3be41fefc0953e3c26e480",
    "tf2_msgs/msg/TFMessage":
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
}
#: Types of control_msgs named without their package inside its own files.
_LOCAL = ("GripperCommand", "JointTolerance", "JointComponentTolerance", "JointTrajectoryControllerState")


def _generated_hashes(package: str) -> dict[str, str]:
    """Every type hash rosidl generated for ``package`` (its share/<pkg>/*/<Type>.json files)."""
    out = {}
    for path in Path(get_package_share_directory(package)).glob("*/*.json"):
        for entry in json.loads(path.read_text())["type_hashes"]:
            out[entry["type_name"]] = entry["hash_string"]
    return out


def test_the_generated_type_hashes_are_upstreams():
    generated = {**_generated_hashes("control_msgs"), **_generated_hashes("tf2_msgs")}
    for name, want in UPSTREAM.items():
        assert generated[name] == want, name
    for store in (Stores.ROS2_KILTED, Stores.ROS2_JAZZY):
        assert get_typestore(store).hash_rihs01("tf2_msgs/msg/TFMessage") == UPSTREAM["tf2_msgs/msg/TFMessage"]


def test_rosbags_hashes_the_installed_definitions_as_upstream():
    """rosbags' RIHS01 (not rosidl's) over the installed .msg / .action files."""
    share = Path(get_package_share_directory("control_msgs"))
    types = {}
    for name in _LOCAL:
        types.update(get_types_from_msg((share / "msg" / f"{name}.msg").read_text(), f"control_msgs/msg/{name}"))
    for action in ("FollowJointTrajectory", "GripperCommand", "ParallelGripperCommand"):
        parts = (share / "action" / f"{action}.action").read_text().split("\n---\n")
        for part, text in zip(("Goal", "Result", "Feedback"), parts):
            text = re.sub(r"^(%s)\b" % "|".join(_LOCAL), r"control_msgs/msg/\1", text, flags=re.M)
            types.update(get_types_from_msg(text, f"control_msgs/action/{action}_{part}"))
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(types)
    for name in types:
        assert store.hash_rihs01(name) == UPSTREAM[name], name


def _pose(xyz, rotvec):
    return np.concatenate([xyz, Rotation.from_rotvec(rotvec).as_quat()])


def test_a_listener_gets_static_and_dynamic_transforms_over_dds(ros):
    prefer = "f2p"                       # the workspace's buffer (tf2_ros, where installed, is tf2's own)
    talker, listener_node = ros.node("tf_talker"), ros.node("tf_listener")
    pub = TransformPublisher(talker)
    head = _pose([0.0, 0.0, 1.2], [0.0, 0.0, 0.3])
    optical = _pose([0.05, 0.0, 0.0], [-np.pi / 2, 0.0, -np.pi / 2])
    pub.send_static([("base_link", "link_head", head)])
    pub.send_static([("link_head", "camera_color_optical_frame", optical)])   # both stay on /tf_static
    tf = TransformListener(listener_node, prefer=prefer)
    assert tf.backend == prefer
    got = tf.lookup("base_link", "camera_color_optical_frame", 0, timeout_s=5.0)
    m = Rotation.from_quat(head[3:]).as_matrix()
    np.testing.assert_allclose(got[:3], head[:3] + m @ optical[:3], atol=1e-9)
    # dynamic: the lift moves; a lookup between two samples interpolates
    for t, z in ((1, 0.2), (2, 0.4)):
        pub.send([("base_link", "link_lift", _pose([0.0, 0.0, z], [0, 0, 0]), t * 10 ** 9)])
    wait_until(lambda: _known(tf, 2 * 10 ** 9), timeout=5.0)
    np.testing.assert_allclose(tf.lookup("base_link", "link_lift", 1_500_000_000)[:3], [0, 0, 0.3], atol=1e-9)
    with pytest.raises(ExtrapolationError):
        tf.lookup("base_link", "link_lift", 3 * 10 ** 9)
    with pytest.raises(UnknownFrameError):
        tf.lookup("base_link", "tool0", 0, timeout_s=0.2)


def _known(tf, stamp_ns):
    try:
        tf.lookup("base_link", "link_lift", stamp_ns)
        return True
    except (ExtrapolationError, UnknownFrameError):
        return False


def test_a_malformed_transform_is_counted_and_the_others_kept(ros):
    from tf2_msgs.msg import TFMessage
    talker, listener_node = ros.node("tf_bad_talker"), ros.node("tf_bad_listener")
    tf = TransformListener(listener_node, prefer="f2p")
    pub = talker.create_publisher(TFMessage, "/tf", 100)
    bad = transform_to_msg("base_link", "nan_frame", [np.nan, 0, 0, 0, 0, 0, 1], 10 ** 9)
    good = transform_to_msg("base_link", "tool0", [0.1, 0, 0, 0, 0, 0, 1], 10 ** 9)
    wait_until(lambda: pub.get_subscription_count() > 0, timeout=5.0)
    pub.publish(TFMessage(transforms=[bad, good]))
    np.testing.assert_allclose(tf.lookup("base_link", "tool0", 0, timeout_s=5.0)[:3], [0.1, 0, 0])
    assert tf.rejected == 1


def test_perception_moves_a_camera_frame_into_base_link_through_tf(ros):
    from rclpy.parameter import Parameter

    from f2p_common.interfaces import CameraCloud, PointCloudError
    from f2p_perception.perception_node import PerceptionNode
    from f2p_ros.conversions import camera_cloud_to_msg
    from support.ros import LifecycleClient
    node = ros.add(PerceptionNode(context=ros.context, parameter_overrides=[Parameter("tf_timeout_s", value=5.0)]))
    LifecycleClient(ros.node("tf_perception_probe"), "perception").activate()
    cloud = CameraCloud(np.array([[0.0, 0.0, 1.0]] * 50, np.float32), instance=np.zeros(50, np.int32),
                        label=np.zeros(50, np.int32), frame_id="camera_color_optical_frame", stamp_ns=10 ** 9)
    with pytest.raises(PointCloudError, match="does not exist"):           # no tf yet: refused, with tf's reason
        node._tf_timeout = 0.0
        node.segment(camera_cloud_to_msg(cloud))
    node._tf_timeout = 5.0
    looking_down = _pose([0.2, 0.0, 1.5], [np.pi, 0.0, 0.0])               # optical z points to -z of base_link
    TransformPublisher(ros.node("tf_camera_mount")).send_static([("base_link", "camera_color_optical_frame",
                                                                  looking_down)])
    scene = node.segment(camera_cloud_to_msg(cloud))
    assert scene.frame_id == "base_link"
    np.testing.assert_allclose(scene.objects[0].box.center, [0.2, 0.0, 0.5], atol=1e-5)
