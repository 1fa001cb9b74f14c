"""Relation detection: the geometric and learned backends (ROS-free) and the ``relation_detector``
lifecycle node over DDS — scene in, relation state out; unusable scenes and checkpoints
reported while the node keeps running."""
from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from f2p_common.interfaces import SegmentedObject, SegmentedScene
from f2p_common.vocabulary import BINARY_RELATIONS
from f2p_interfaces.msg import RelationState as RelationStateMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_perception.segmentation import LabelledCloudSegmenter, SensorFrame
from f2p_relations.detectors import GeometricDetector, LearnedDetector
from f2p_relations.relation_detector_node import RelationDetectorNode
from f2p_ros.conversions import relations_from_msg, scene_to_msg
from f2p_sim.config import load_world_config
from f2p_sim.robot import SimRobot
from support.ros import WAIT_S, LifecycleClient, collector, wait_until

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
INSIDE, ABOVE = BINARY_RELATIONS.index("inside"), BINARY_RELATIONS.index("above")


@pytest.fixture(scope="module")
def perceived():
    """Transport-3 as perception sees it, and the simulator's relations."""
    robot = SimRobot(load_world_config())
    robot.reset_task("transport", 3, 1000)
    scene = SegmentedScene(LabelledCloudSegmenter().segment(SensorFrame(robot.camera_cloud())), "base_link", 0,
                           "camera")
    return scene, robot.relations()


def test_geometric_detector_finds_the_tasks_relations(perceived):
    scene, truth = perceived
    state = GeometricDetector().detect(scene)
    k = state.object_ids.index
    assert state.object_ids == truth.object_ids
    assert state.binary[k("cuboid_3"), k("bin_2"), INSIDE] == 1.0 and state.binary[k("bin_2"), k("table_0"), ABOVE] == 1.0
    assert set(np.unique(state.binary)) <= {0.0, 1.0}


def test_geometric_detector_boxes_leave_a_depth_cameras_outliers_out(perceived):
    # three flying pixels under the bin (a depth edge's mixed returns): its box would reach into
    # the table and above(bin, table) would not hold; trimmed boxes keep it
    scene, _ = perceived
    k = scene.object_ids.index("bin_2")
    objects = list(scene.objects)
    low = objects[k].points[:3].copy()
    low[:, 2] = objects[k].points[:, 2].min() - 0.04
    objects[k] = SegmentedObject("bin_2", "bin", np.vstack([objects[k].points, low]))
    noisy = SegmentedScene(objects, "base_link", 0, "camera")
    table = scene.object_ids.index("table_0")
    assert GeometricDetector().detect(noisy).binary[k, table, ABOVE] == 1.0
    assert GeometricDetector(trim=0.0).detect(noisy).binary[k, table, ABOVE] == 0.0
    from f2p_relations.relations import boxes_from_clouds
    with pytest.raises(ValueError, match="trim"):
        boxes_from_clouds([objects[k].points], trim=0.5)


def test_learned_detector_uses_the_models_detection_head(perceived, tmp_path):
    from support.failure_fixtures import save_tiny_checkpoint
    scene, _ = perceived
    det = LearnedDetector(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    state = det.detect(scene)
    assert det.version == "tiny" and state.object_ids == scene.object_ids
    assert ((state.binary >= 0) & (state.binary <= 1)).all() and (state.binary[np.arange(5), np.arange(5)] == 0).all()


def test_detectors_refuse_scenes_without_points():
    scene = SegmentedScene([SegmentedObject("cup_0", "cup", np.zeros((0, 3)))])
    with pytest.raises(ValueError, match=r"objects \['cup_0'\] have no points"):
        GeometricDetector().detect(scene)
    with pytest.raises(ValueError, match="no objects"):
        GeometricDetector().detect(SegmentedScene([]))


# ---------------------------------------------------------------------------- the node over DDS
def _node(ros, **params):
    node = ros.add(RelationDetectorNode(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()]))
    probe = ros.node("relations_probe")
    return node, probe, LifecycleClient(probe, "relation_detector")


@pytest.mark.parametrize("backend", ["geometric", "learned"])
def test_node_turns_scenes_into_relation_states(ros, perceived, backend, tmp_path):
    from support.failure_fixtures import save_tiny_checkpoint
    scene, truth = perceived
    params = {"backend": backend}
    if backend == "learned":
        params["checkpoint"] = str(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    node, probe, lc = _node(ros, **params)
    lc.activate()
    states, got = collector(probe, RelationStateMsg, "/relation_state", LATCHED)
    pub = probe.create_publisher(SegmentedSceneMsg, "/segmented_scene", LATCHED)
    pub.publish(scene_to_msg(scene))
    assert got.wait(WAIT_S)
    state = relations_from_msg(states[-1])
    assert state.object_ids == truth.object_ids and not np.isnan(state.binary).any()


def test_node_reports_unusable_scenes_and_keeps_running(ros, perceived):
    scene, _ = perceived
    node, probe, lc = _node(ros)
    lc.activate()
    diags, _ = collector(probe, DiagnosticArray, "/diagnostics", 10,
                         lambda m: m.status[0].level == DiagnosticStatus.ERROR)
    states, got = collector(probe, RelationStateMsg, "/relation_state", LATCHED)
    pub = probe.create_publisher(SegmentedSceneMsg, "/segmented_scene", LATCHED)
    wait_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(scene_to_msg(SegmentedScene([SegmentedObject("cup_0", "cup", np.zeros((0, 3)))])))
    wait_until(lambda: diags)
    assert "have no points" in diags[0].status[0].message
    pub.publish(scene_to_msg(scene))
    assert got.wait(WAIT_S) and node.rejected == 1


def test_a_corrupt_checkpoint_fails_configure(ros, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    node, probe, lc = _node(ros, backend="learned", checkpoint=str(bad))
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)
