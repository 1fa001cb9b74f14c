"""The cloud_filter lifecycle node, driven through its real lifecycle services over DDS.

Walks configure -> activate -> deactivate -> cleanup with a client node, loads the
installed f2p_bringup params file, filters a real cloud, and reports malformed clouds on
/diagnostics instead of dropping them silently.
"""
from __future__ import annotations


import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2

from f2p_bringup import params_file
from f2p_perception.cloud_filter_node import CloudFilterNode
from f2p_ros.conversions import cloud_to_xyz, xyz_to_cloud
from support.ros import WAIT_S, LifecycleClient, collector as _collector, wait_until

PARAMS_FILE = params_file()      # the installed f2p_bringup one


def _publish_until(pub, msg, event):
    # The node subscribes with best-effort sensor QoS: resend until the output arrives.
    for _ in range(int(WAIT_S / 0.2)):
        pub.publish(msg)
        if event.wait(0.2):
            return
    raise TimeoutError("no output for the published cloud")


def test_lifecycle_walk_and_filtering(ros):
    node = ros.add(CloudFilterNode(context=ros.context,
                                   cli_args=["--ros-args", "--params-file", str(PARAMS_FILE)]))
    probe = ros.node("cloud_filter_probe")
    lc = LifecycleClient(probe, "cloud_filter")
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED

    assert lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == State.PRIMARY_STATE_INACTIVE
    # Values come from the shipped params file, not the code defaults.
    assert list(node.get_parameter("crop_max").value) == [1.5, 1.5, 1.8]

    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    assert lc.state() == State.PRIMARY_STATE_ACTIVE
    # endpoints destroyed at run time carry no QoS event handlers (cloud_filter_node docstring:
    # with them, deactivate raced this MultiThreadedExecutor and hung 2 runs in 15)
    points_subs = [s for s in node.subscriptions if s.topic_name == "/points"]
    assert len(points_subs) == 1 and points_subs[0].event_handlers == []
    assert node._pub.event_handlers == [] and node._diag.event_handlers == []

    filtered, got_filtered = _collector(probe, PointCloud2, "/points_filtered", 10)
    errors, got_error = _collector(
        probe, DiagnosticArray, "/diagnostics", 10,
        lambda m: m.status[0].level == DiagnosticStatus.ERROR)
    pub = probe.create_publisher(PointCloud2, "/points", qos_profile_sensor_data)
    wait_until(lambda: pub.get_subscription_count() > 0)

    rng = np.random.default_rng(0)
    inside = rng.uniform(-1.0, 1.0, size=(400, 3)).astype(np.float32)
    outside = inside + np.float32(5.0)  # beyond crop_max
    _publish_until(pub, xyz_to_cloud(np.vstack([inside, outside]), frame_id="base_link"), got_filtered)
    out = cloud_to_xyz(filtered[0])
    assert filtered[0].header.frame_id == "base_link"
    assert 50 <= len(out) <= 400  # voxelised, nothing from outside the box
    assert (out <= 1.0 + 1e-5).all() and (out >= -1.0 - 1e-5).all()

    # A malformed cloud (x/y/z missing) is reported, with the reason, on /diagnostics.
    bad = xyz_to_cloud(inside)
    bad.fields = bad.fields[:2]
    _publish_until(pub, bad, got_error)
    assert "lacks field(s) ['z']" in errors[0].status[0].message
    assert node.rejected >= 1 and node.accepted >= 1

    assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    assert lc.state() == State.PRIMARY_STATE_INACTIVE
    assert not [s for s in node.subscriptions if s.topic_name == "/points"]       # the node owned it, and let it go
    assert lc.transition(Transition.TRANSITION_CLEANUP)
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert node._pub is None and node._cfg is None


def test_invalid_parameters_fail_configure_with_reason(ros):
    from rclpy.parameter import Parameter

    node = ros.add(CloudFilterNode(context=ros.context, parameter_overrides=[
        Parameter("crop_min", value=[0.0, 0.0]), Parameter("voxel_size", value=-1.0)]))
    probe = ros.node("cloud_filter_probe2")
    lc = LifecycleClient(probe, "cloud_filter")
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert node._pub is None


def test_filter_rejects_a_view_that_misses_the_workspace():
    from f2p_ros.conversions import PointCloudError
    from f2p_perception.cloud_filter import CloudFilterConfig, filter_points

    with pytest.raises(PointCloudError, match="only 0 of 10 points lie in the workspace box"):
        filter_points(np.full((10, 3), 9.0, np.float32), CloudFilterConfig())
    with pytest.raises(ValueError, match="crop_min < crop_max"):
        CloudFilterConfig(crop_min=(1, 1, 1), crop_max=(0, 0, 0))


def test_a_destroyed_node_leaves_the_graph(ros):
    # rclpy's LifecycleNode keeps its state machine (and the node handle) alive after
    # destroy_node; ManagedNode destroys it, so no other process can call a dead node's services.
    node = ros.add(CloudFilterNode(context=ros.context))
    probe = ros.node("cloud_filter_probe")
    wait_until(lambda: "cloud_filter" in probe.get_node_names())
    ros.executor.remove_node(node)
    node.destroy_node()
    wait_until(lambda: "cloud_filter" not in probe.get_node_names()
               and "/cloud_filter/change_state" not in dict(probe.get_service_names_and_types()))
