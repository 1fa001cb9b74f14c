"""The visualizer: the drawing rules (ROS-free) and the ``visualizer`` node over DDS — scene,
relations, the executing step and a failure's mismatches in, one MarkerArray out; unreadable
input reported while the last good picture stays."""
from __future__ import annotations

import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import Marker, MarkerArray

from f2p_common.interfaces import OrientedBox, Plan, SegmentedScene, Shape
from f2p_common.vocabulary import BINARY_RELATIONS
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import Plan as PlanMsg
from f2p_interfaces.msg import RelationState as RelationStateMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_interfaces.msg import TaskProgress
from f2p_relations.detectors import GeometricDetector
from f2p_ros.conversions import (failure_event_to_msg, plan_to_msg, relations_to_msg, scene_to_msg, shapes_from_msg,
                                 shapes_to_msg)
from f2p_viz.drawing import mismatch_shapes, relation_shapes, scene_shapes, skill_motion, step_shapes
from f2p_viz.visualizer_node import VisualizerNode
from support.failure_fixtures import handmade_event
from support.scenes import cup_in_bin
from support.ros import WAIT_S, LifecycleClient, collector

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture
def scene():
    """A cup resting inside a bin on a table (the ids of support.failure_fixtures.handmade_event)."""
    return cup_in_bin("base_link", 1_000)


def _plan(scene, skill="pick_place", params=(0.1, -0.2, 0.05)):
    n = len(scene.objects)
    step = {"unary": np.zeros((n, 3), np.float32), "binary": np.zeros((n, n, 9), np.float32)}
    return Plan([(skill, 2)], [list(params)], [step], 0.9, [("inside", 2, 1)], scene.object_ids, plan_id="plan-7",
                frame_id="base_link")


# ---------------------------------------------------------------------------- drawing
def test_scene_shapes_are_a_box_and_a_label_per_object(scene):
    rel = GeometricDetector().detect(scene)
    shapes = scene_shapes(scene, rel)
    boxes = [s for s in shapes if s.namespace == "objects"]
    assert [s.kind for s in boxes] == ["box"] * 3 and all(s.frame_id == "base_link" for s in shapes)
    np.testing.assert_allclose(boxes[2].center, [0.6, 0.0, 0.45], atol=1e-6)
    np.testing.assert_allclose(boxes[2].scale, [0.06, 0.06, 0.08], atol=1e-6)
    labels = [s.text for s in shapes if s.namespace == "labels"]
    assert labels == ["table_0", "bin_1", "cup_2"]
    assert [s for s in shapes if s.namespace == "labels"][2].center[2] > 0.49       # above the cup


def test_relation_edges_join_subject_and_object_for_the_chosen_predicates(scene):
    rel = GeometricDetector().detect(scene)
    assert rel.binary[2, 1, BINARY_RELATIONS.index("inside")] == 1.0
    shapes = relation_shapes(rel, scene, ["inside"])
    edges = [s for s in shapes if s.kind == "lines"]
    assert [t.text for t in shapes if t.kind == "text"] == ["inside"] * len(edges)
    assert any(np.allclose(e.points, [scene.objects[2].box.center, scene.objects[1].box.center]) for e in edges)
    assert relation_shapes(rel, SegmentedScene([], "base_link"), ["inside"]) == []         # objects not shown: nothing


def test_skill_motion_follows_each_skills_parameters(scene):
    box = scene.objects[2].box
    start, end = skill_motion("pick_place", (0.1, -0.2, 0.05), box)
    np.testing.assert_allclose(start, [0.6, 0.0, 0.49], atol=1e-6)
    np.testing.assert_allclose(end - start, [0.1, -0.2, 0.05])
    start, end = skill_motion("push", (math.pi / 2, 0.2), box)
    np.testing.assert_allclose(end - start, [0.0, 0.2, 0.0], atol=1e-9)
    drawer = OrientedBox([0.5, 0, 0.3], [0, 0, 0, 1], [0.3, 0.4, 0.1])
    assert skill_motion("open_drawer", (0.15,), drawer)[1][0] == pytest.approx(0.35)       # out of the front (-x)
    assert skill_motion("close_drawer", (0.15,), drawer)[1][0] == pytest.approx(0.65)


def test_step_shapes_highlight_the_target_and_where_it_goes(scene):
    shapes = step_shapes(_plan(scene), 0, scene)
    assert [s.kind for s in shapes] == ["box", "arrow", "text"] and shapes[2].text == "1/1 pick_place"
    np.testing.assert_allclose(shapes[0].center, scene.objects[2].box.center)
    assert step_shapes(_plan(scene), 0, SegmentedScene(scene.objects[:2], "base_link")) == []   # target not seen


def test_mismatch_shapes_name_prediction_and_observation(scene):
    event = handmade_event()
    shapes = mismatch_shapes(event.mismatches, event.segment_ids, scene)
    texts = [s.text for s in shapes if s.kind == "text"]
    assert texts == ["inside: predicted p=0.90, observed no", "movable: predicted p=0.25, observed yes"]
    assert [s.kind for s in shapes if s.kind != "text"] == ["lines", "box"]         # an edge, a ring for the unary
    assert all(s.color[:3] == pytest.approx((1.0, 0.1, 0.1)) for s in shapes)


def test_shapes_refuse_bad_geometry_and_survive_the_round_trip(scene):
    with pytest.raises(ValueError, match="kind 'sphere'"):
        Shape("sphere", "x", 0, (1, 1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="arrow cannot take 3 points"):
        Shape("arrow", "x", 0, (1, 1, 1, 1), (1, 1, 1), points=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        Shape("box", "x", 0, (1, 1, 1, 1), (1, 1, 1), center=[np.nan, 0, 0])
    shapes = (scene_shapes(scene, GeometricDetector().detect(scene)) + step_shapes(_plan(scene), 0, scene)
              + mismatch_shapes(handmade_event().mismatches, handmade_event().segment_ids, scene))
    msg = shapes_to_msg(shapes, 5)
    assert msg.markers[0].action == Marker.DELETEALL and msg.markers[1].header.stamp.nanosec == 5
    assert shapes_from_msg(msg) == shapes


# ---------------------------------------------------------------------------- the node
def _markers_with(namespaces):
    return lambda m: namespaces <= {k.ns for k in m.markers}


def test_visualizer_draws_scene_step_and_failure_and_survives_bad_input(ros, scene):
    ros.add(VisualizerNode(context=ros.context))
    probe = ros.node("visualizer_probe")
    LifecycleClient(probe, "visualizer").activate()
    pubs = {t: probe.create_publisher(m, t, q) for t, m, q in (
        ("segmented_scene", SegmentedSceneMsg, LATCHED), ("relation_state", RelationStateMsg, LATCHED),
        ("plan", PlanMsg, LATCHED), ("task_progress", TaskProgress, LATCHED), ("failure_events", FailureEventMsg, 10))}
    rel = GeometricDetector().detect(scene)
    pubs["segmented_scene"].publish(scene_to_msg(scene))
    pubs["relation_state"].publish(relations_to_msg(rel))
    drawn, got = collector(probe, MarkerArray, "markers", LATCHED, _markers_with({"objects", "labels", "relations"}))
    assert got.wait(WAIT_S)
    assert [s.text for s in shapes_from_msg(drawn[-1]) if s.namespace == "labels"] == ["table_0", "bin_1", "cup_2"]

    plan = _plan(scene)
    pubs["plan"].publish(plan_to_msg(plan))
    pubs["task_progress"].publish(TaskProgress(goal_id="a" * 32, stage=TaskProgress.STAGE_EXECUTE, plan_id="plan-7", num_steps=1))
    stepping, got = collector(probe, MarkerArray, "markers", LATCHED, _markers_with({"step"}))
    assert got.wait(WAIT_S)
    assert "1/1 pick_place" in [s.text for s in shapes_from_msg(stepping[-1])]

    pubs["failure_events"].publish(failure_event_to_msg(handmade_event()))
    failed, got = collector(probe, MarkerArray, "markers", LATCHED, _markers_with({"mismatches"}))
    assert got.wait(WAIT_S)

    # an unreadable scene: reported, and the last good picture stays
    diag, warned = collector(probe, DiagnosticArray, "/diagnostics", 10,
                             lambda m: any(s.name == "visualizer: inputs" and s.level == DiagnosticStatus.WARN
                                           for s in m.status))
    bad = scene_to_msg(scene)
    bad.objects[0].label = "unicorn"
    pubs["segmented_scene"].publish(bad)
    assert warned.wait(WAIT_S)
    assert "unicorn" in diag[0].status[0].message

    # the next task clears the last one's failure
    cleared, got = collector(probe, MarkerArray, "markers", LATCHED,
                             lambda m: m.markers and "mismatches" not in {k.ns for k in m.markers})
    pubs["task_progress"].publish(TaskProgress(goal_id="b" * 32, stage=TaskProgress.STAGE_OBSERVE))
    assert got.wait(WAIT_S)
    assert {"objects", "labels"} <= {k.ns for k in cleared[-1].markers} and "step" not in {k.ns for k in cleared[-1].markers}
