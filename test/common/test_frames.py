"""The ROS-free transform buffer (f2p_common.frames): tf2's semantics where tf2_ros is absent."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from f2p_common.frames import (ConnectivityError, ExtrapolationError, TransformBuffer, UnknownFrameError, check_pose,
                               compose, interpolate, invert)

S = 1_000_000_000


def pose(xyz, rotvec=(0.0, 0.0, 0.0)):
    return np.concatenate([xyz, Rotation.from_rotvec(rotvec).as_quat()])


def matrix(p):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = Rotation.from_quat(p[3:]).as_matrix(), p[:3]
    return m


def test_compose_and_invert_agree_with_homogeneous_matrices():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = pose(rng.normal(size=3), rng.normal(size=3))
        b = pose(rng.normal(size=3), rng.normal(size=3))
        np.testing.assert_allclose(matrix(compose(a, b)), matrix(a) @ matrix(b), atol=1e-12)
        np.testing.assert_allclose(matrix(invert(a)), np.linalg.inv(matrix(a)), atol=1e-12)


def test_a_chain_through_a_common_ancestor_is_composed():
    """base_link -> torso -> head_camera and base_link -> arm -> gripper (static and dynamic)."""
    buf = TransformBuffer()
    torso, cam = pose([0.0, 0.0, 1.0], [0, 0, np.pi / 2]), pose([0.1, 0.0, 0.2], [np.pi / 2, 0, 0])
    arm, grip = pose([0.2, 0.0, 0.5]), pose([0.3, 0.0, 0.0], [0, np.pi / 4, 0])
    buf.set_transform("base_link", "torso", torso, 0, static=True)
    buf.set_transform("torso", "camera_color_optical_frame", cam, 5 * S)
    buf.set_transform("/base_link", "arm", arm, 5 * S)
    buf.set_transform("arm", "gripper", grip, 5 * S)
    got = buf.lookup("gripper", "camera_color_optical_frame", 5 * S)
    want = np.linalg.inv(matrix(arm) @ matrix(grip)) @ matrix(torso) @ matrix(cam)
    np.testing.assert_allclose(matrix(got), want, atol=1e-12)
    np.testing.assert_allclose(buf.lookup("base_link", "base_link"), [0, 0, 0, 0, 0, 0, 1])


def test_dynamic_transforms_interpolate_and_refuse_to_extrapolate():
    buf = TransformBuffer(cache_s=10.0)
    buf.set_transform("base_link", "link_head_tilt", pose([0, 0, 1], [0, 0, 0]), 1 * S)
    buf.set_transform("base_link", "link_head_tilt", pose([0, 0, 2], [0, 0, np.pi / 2]), 3 * S)
    mid = buf.lookup("base_link", "link_head_tilt", 2 * S)
    np.testing.assert_allclose(mid[:3], [0, 0, 1.5])
    np.testing.assert_allclose(Rotation.from_quat(mid[3:]).as_rotvec(), [0, 0, np.pi / 4], atol=1e-12)
    np.testing.assert_allclose(buf.lookup("base_link", "link_head_tilt", 0)[:3], [0, 0, 2])   # latest
    with pytest.raises(ExtrapolationError, match="in the future"):
        buf.lookup("base_link", "link_head_tilt", 4 * S)
    with pytest.raises(ExtrapolationError, match="in the past"):
        buf.lookup("base_link", "link_head_tilt", S // 2)


def test_time_zero_is_the_latest_time_the_whole_chain_is_known():
    buf = TransformBuffer()
    buf.set_transform("odom", "base_link", pose([0, 0, 0]), 1 * S)
    buf.set_transform("odom", "base_link", pose([1, 0, 0]), 2 * S)
    buf.set_transform("base_link", "camera", pose([0, 0, 1]), 1 * S)
    buf.set_transform("base_link", "camera", pose([0, 0, 1]), 1500 * S // 1000)
    got = buf.lookup("odom", "camera", 0)                 # at 1.5 s: the camera's latest
    np.testing.assert_allclose(got[:3], [0.5, 0, 1])


def test_old_samples_leave_the_cache_and_static_ones_never_do():
    buf = TransformBuffer(cache_s=1.0)
    buf.set_transform("map", "odom", pose([0, 0, 0]), 0, static=True)
    for t in range(10):
        buf.set_transform("odom", "base_link", pose([t, 0, 0]), t * S)
    with pytest.raises(ExtrapolationError):
        buf.lookup("odom", "base_link", 5 * S)
    np.testing.assert_allclose(buf.lookup("map", "base_link", int(8.5 * S))[:3], [8.5, 0, 0])


def test_unknown_and_unconnected_frames_and_bad_poses_are_named():
    buf = TransformBuffer()
    buf.set_transform("base_link", "camera", pose([0, 0, 1]), 0, static=True)
    buf.set_transform("world", "table", pose([0, 0, 1]), 0, static=True)
    with pytest.raises(UnknownFrameError, match="'tool0' does not exist"):
        buf.lookup("base_link", "tool0")
    with pytest.raises(ConnectivityError, match="not in one tree"):
        buf.lookup("base_link", "table")
    for bad in ([0, 0, 0, 0, 0, 0, 0], [np.nan, 0, 0, 0, 0, 0, 1], [1, 2, 3]):
        with pytest.raises(ValueError, match="unit quaternion"):
            buf.set_transform("base_link", "x", bad, 0)
    with pytest.raises(ValueError, match="two different, non-empty frames"):
        buf.set_transform("base_link", "base_link", pose([0, 0, 0]), 0)
    np.testing.assert_allclose(check_pose([0, 0, 0, 0, 0, 0, -1.0]), [0, 0, 0, 0, 0, 0, -1.0])


def test_interpolation_takes_the_short_way_round():
    a, b = pose([0, 0, 0], [0, 0, 0.1]), pose([0, 0, 0], [0, 0, -0.1])
    b[3:] = -b[3:]                                        # the same rotation, the other hemisphere
    np.testing.assert_allclose(Rotation.from_quat(interpolate(a, b, 0.5)[3:]).as_rotvec(), [0, 0, 0], atol=1e-12)
