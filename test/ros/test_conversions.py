"""The one conversion module (f2p_ros.conversions): every f2p dataclass -> message -> dataclass
is equal to what was sent, and malformed messages are refused with the field at fault named."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from f2p_interfaces import msg as f2p_msg

from f2p_common.interfaces import (ModelInfo, OrientedBox, Plan, PointCloudError, RelationState, SegmentedObject,
                                   SegmentedScene, SkillCall)
from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS
from f2p_failure.events import FailureEventError
from f2p_ros import conversions as C

U, B = len(UNARY_RELATIONS), len(BINARY_RELATIONS)
STAMP = 1_700_000_000_123_456_789


def scene(seed=0) -> SegmentedScene:
    rng = np.random.default_rng(seed)
    table = SegmentedObject("table_a", "table", rng.uniform(-1, 1, (40, 3)), score=0.9)
    cup = SegmentedObject("cup_0", "cup", rng.uniform(0, 0.1, (12, 3)), score=0.731,
                          box=OrientedBox.around(rng.uniform(0, 0.1, (12, 3)), yaw=0.4),
                          colors=rng.integers(0, 256, (12, 3), dtype=np.uint8))
    hidden = SegmentedObject("item_1", "cuboid", np.zeros((0, 3)))          # seen before, not now: no box
    return SegmentedScene([table, cup, hidden], frame_id="base_link", stamp_ns=STAMP, source="camera")


def relation_state(n=3, seed=0, unknown=True) -> RelationState:
    rng = np.random.default_rng(seed)
    unary = rng.random((n, U)).astype(np.float32)
    binary = rng.random((n, n, B)).astype(np.float32)
    binary[np.arange(n), np.arange(n)] = 0.0
    if unknown:
        unary[0, 1] = binary[1, 0, 4] = np.nan
    return RelationState([f"o{i}" for i in range(n)], unary, binary, "world", STAMP)


# ---------------------------------------------------------------------------- scenes and clouds
def test_scene_round_trip_keeps_points_colours_boxes_and_scores():
    s = scene()
    msg = C.scene_to_msg(s)
    assert msg.header.frame_id == "base_link" and C.stamp_to_ns(msg.header.stamp) == STAMP
    assert [o.cloud.width for o in msg.objects] == [40, 12, 0]
    back = C.scene_from_msg(msg)
    assert back == s
    assert back.objects[1].colors.dtype == np.uint8 and back.objects[2].box is None
    assert back.objects[1].score == pytest.approx(0.731) and back.objects[1].score == s.objects[1].score


def test_scene_from_msg_names_the_bad_object():
    msg = C.scene_to_msg(scene())
    msg.objects[1].label = "teapot"
    with pytest.raises(C.ConversionError, match=r"objects\[1\] \('cup_0'\).*unknown object class 'teapot'"):
        C.scene_from_msg(msg)
    msg = C.scene_to_msg(scene())
    msg.objects[2].id = "cup_0"
    with pytest.raises(C.ConversionError, match="duplicate object ids"):
        C.scene_from_msg(msg)
    msg = C.scene_to_msg(scene())
    data = np.frombuffer(bytes(msg.objects[0].cloud.data), np.float32).copy()
    data[0] = np.nan
    msg.objects[0].cloud.data = data.tobytes()
    with pytest.raises(PointCloudError, match=r"objects\[0\].*NaN"):
        C.scene_from_msg(msg)


def test_cloud_colours_round_trip_and_nan_points_drop_with_their_colours():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    col = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    xyz, rgb = C.cloud_to_arrays(C.xyz_to_cloud(pts, col, frame_id="camera"))
    assert np.array_equal(xyz, pts) and np.array_equal(rgb, col)
    msg = C.xyz_to_cloud(pts, col)
    raw = np.frombuffer(bytes(msg.data), np.float32).reshape(50, 4).copy()
    raw[[3, 7], 0] = np.nan
    msg.data = raw.tobytes()
    xyz, rgb = C.cloud_to_arrays(msg, nan_policy="drop")
    keep = np.setdiff1d(np.arange(50), [3, 7])
    assert np.array_equal(xyz, pts[keep]) and np.array_equal(rgb, col[keep])
    assert C.cloud_to_arrays(C.xyz_to_cloud(pts))[1] is None
    with pytest.raises(PointCloudError, match="colors must be uint8"):
        C.xyz_to_cloud(pts, col.astype(np.int32))


# ---------------------------------------------------------------------------- relations
def test_relation_state_round_trip_keeps_unknown_relations_unknown():
    st = relation_state()
    msg = C.relations_to_msg(st)
    assert len(msg.relations) == 3 * U + 6 * B - 2                  # no self pairs, no unknown ones
    back = C.relations_from_msg(msg)
    assert back == st and np.isnan(back.unary[0, 1]) and np.isnan(back.binary[1, 0, 4])
    full = relation_state(unknown=False)
    assert C.relations_from_msg(C.relations_to_msg(full)) == full


@pytest.mark.parametrize("edit, pattern", [
    (lambda m: setattr(m.relations[0], "predicate", "flying"), "unknown relation predicate 'flying'"),
    (lambda m: setattr(m.relations[0], "subject_id", "ghost"), "unknown object id 'ghost'"),
    (lambda m: setattr(m.relations[0], "object_id", "o1"), "is unary; object_id must be empty"),
    (lambda m: setattr(m.relations[-1], "object_id", ""), "is binary; object_id is empty"),
    (lambda m: setattr(m.relations[-1], "object_id", m.relations[-1].subject_id), "no relation with itself"),
    (lambda m: setattr(m.relations[0], "probability", 1.5), r"outside \[0, 1\]"),
    (lambda m: m.relations.append(m.relations[0]), "listed twice"),
    (lambda m: setattr(m, "object_ids", ["o0", "o0", "o2"]), "duplicate object ids"),
])
def test_malformed_relation_states_are_refused(edit, pattern):
    msg = C.relations_to_msg(relation_state(unknown=False))
    edit(msg)
    with pytest.raises(C.ConversionError, match=pattern):
        C.relations_from_msg(msg)


# ---------------------------------------------------------------------------- skills, plans, models
def test_skill_call_round_trip_and_refusals():
    call = SkillCall("push", ("cup_0",), (math.pi / 2, 0.2))
    assert C.skill_call_from_msg(C.skill_call_to_msg(call)) == call
    for msg, pattern in ((f2p_msg.SkillCall(skill="throw", target_ids=["a"], parameters=[]), "unknown skill"),
                         (f2p_msg.SkillCall(skill="push", target_ids=[], parameters=[0.0, 0.1]), "takes 1 target"),
                         (f2p_msg.SkillCall(skill="push", target_ids=["a"], parameters=[0.0, 2.0]), "outside its box")):
        with pytest.raises(C.ConversionError, match=pattern):
            C.skill_call_from_msg(msg)


def plan() -> Plan:
    steps = [relation_state(seed=s, unknown=False) for s in (1, 2)]
    return Plan(skeleton=[("pick_place", 1), ("push", 2)], parameters=[[0.1, -0.25, 0.05], [0.5, 0.2]],
                step_relations=[{"unary": r.unary, "binary": r.binary} for r in steps], goal_probability=0.8123456789,
                goal=[("inside", 2, 1), ("movable", 1, None)], object_ids=["o0", "o1", "o2"], plan_id="plan-7",
                model_version="ae063623", frame_id="world", stamp_ns=STAMP,
                timing={"encode_s": 0.01, "optimise_s": 0.5, "total_s": 0.52, "skeletons": 2.0}, evaluated_samples=2048)


def test_plan_round_trip():
    p = plan()
    msg = C.plan_to_msg(p)
    assert [s.skill.target_ids for s in msg.steps] == [["o1"], ["o2"]] and msg.goal[0].subject_id == "o2"
    assert C.plan_from_msg(msg) == p
    with pytest.raises(C.ConversionError, match="needs 3 unique object_ids"):
        C.plan_to_msg(dataclasses.replace(p, object_ids=[]))
    msg.steps[1].skill.target_ids = ["o9"]
    with pytest.raises(C.ConversionError, match=r"steps\[1\].*unknown object id 'o9'"):
        C.plan_from_msg(msg)


def test_a_planners_plan_converts(tmp_path):
    import torch
    from f2p_skill_effect.model import Observation
    from f2p_skill_effect.planner import PlannerConfig, plan as make_plan
    from support.failure_fixtures import tiny_model
    rng = np.random.default_rng(0)
    obs = Observation.from_clouds([rng.normal(c, 0.02, (64, 3)) for c in ((0, 0, 0), (0.3, 0, 0), (0, 0.3, 0))], 32,
                                  max_objects=8)
    with torch.no_grad():
        p = make_plan(tiny_model(), obs, [("above", 0, 1)], [("pick_place", 0)], PlannerConfig(samples=16, iterations=1))
    p.object_ids, p.plan_id = ["a", "b", "c"], "p1"
    assert C.plan_from_msg(C.plan_to_msg(p)) == p


def test_model_info_round_trip_from_a_checkpoint(tmp_path):
    from f2p_skill_effect.checkpoint import model_info
    from support.failure_fixtures import save_tiny_checkpoint
    info = model_info(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    assert info.version == "tiny" and info.uri.startswith("file://") and len(info.sha256) == 64
    info = dataclasses.replace(info, signature="ab" * 32, metrics={"detection_f1": 0.97, "val_loss": 1.05})
    assert C.model_info_from_msg(C.model_info_to_msg(info)) == info
    assert C.model_info_from_msg(C.model_info_to_msg(ModelInfo("skill_effect", "v1"))) == ModelInfo("skill_effect", "v1")


def test_model_chunk_round_trip(tmp_path):
    from f2p_common.model_transfer import read_chunk
    from f2p_interfaces.srv import FetchModel
    path = tmp_path / "m.pt"
    path.write_bytes(bytes(range(256)) * 40)
    chunk = read_chunk(path, ModelInfo("skill_effect", "v1", sha256="ab" * 32, signature="cd" * 64), 1000, 3000)
    resp = C.model_chunk_to_response(chunk, FetchModel.Response())
    assert resp.success and resp.error_code == FetchModel.Response.ERROR_NONE
    assert C.model_chunk_from_response(resp) == chunk


# ---------------------------------------------------------------------------- failure events
def _make_event(with_after):
    from support.failure_fixtures import handmade_event
    return handmade_event(with_after=with_after)


@pytest.mark.parametrize("with_after", [False, True])
def test_failure_event_round_trip_is_equal(with_after):
    ev = _make_event(with_after)
    msg = C.failure_event_to_msg(ev)
    assert msg.category == f2p_msg.FailureEvent.CATEGORY_INCORRECT_PREDICTION
    assert [m.subject_id for m in msg.mismatches] == ["cup_2", "cup_2"] and msg.skill.target_ids == ["cup_2"]
    assert C.failure_event_from_msg(msg) == ev


def test_a_simulated_failure_event_round_trips_over_dds(ros):
    """A real event (recorded by a simulated trial with the tiny model) sent between two nodes."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.task import Future
    from support.failure_fixtures import failure_event
    from support.ros import wait_future
    ev = failure_event()
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    received = Future()
    pub = ros.node("event_pub").create_publisher(f2p_msg.FailureEvent, "/f2p_test/failure_events", qos)
    pub.publish(C.failure_event_to_msg(ev))
    ros.node("event_sub").create_subscription(f2p_msg.FailureEvent, "/f2p_test/failure_events",
                                              lambda m: received.done() or received.set_result(m), qos)
    assert C.failure_event_from_msg(wait_future(received)) == ev


@pytest.mark.parametrize("edit, error, pattern", [
    (lambda m: setattr(m, "category", 7), C.ConversionError, "category 7"),
    (lambda m: setattr(m, "context_json", "{not json"), C.ConversionError, "context_json is not JSON"),
    (lambda m: setattr(m.skill, "target_ids", ["ghost"]), C.ConversionError, "unknown object id 'ghost'"),
    (lambda m: m.observed_after.relations.pop(), C.ConversionError, "observed_after: an observed state must list"),
    (lambda m: m.relations_before.object_ids.reverse(), C.ConversionError, "relations_before ranges over"),
    (lambda m: setattr(m, "event_id", "../escape"), FailureEventError, "not usable as a file name"),
    (lambda m: setattr(m.mismatches[0], "probability", 0.5), FailureEventError, "is not predicted_after's"),
])
def test_malformed_failure_event_messages_are_refused(edit, error, pattern):
    msg = C.failure_event_to_msg(_make_event(False))
    edit(msg)
    with pytest.raises(error, match=pattern):
        C.failure_event_from_msg(msg)


def test_stamps():
    assert C.stamp_to_ns(C.ns_to_stamp(STAMP)) == STAMP
    with pytest.raises(C.ConversionError):
        C.ns_to_stamp(-1)


# ---------------------------------------------------------------------------- camera clouds
def test_camera_cloud_round_trip_keeps_organised_layout_nan_and_labels():
    from f2p_common.interfaces import CameraCloud
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(12, 3)).astype(np.float32)
    pts[[2, 7]] = np.nan
    cloud = CameraCloud(pts, rng.integers(0, 256, (12, 3), dtype=np.uint8), np.arange(12) - 1,
                        rng.integers(-1, 8, 12), "camera_link", STAMP, height=3)
    msg = C.camera_cloud_to_msg(cloud)
    assert (msg.height, msg.width, msg.is_dense) == (3, 4, False)
    assert C.camera_cloud_from_msg(msg) == cloud
    plain = CameraCloud(pts[:4] * 0 + 1, frame_id="base_link")
    assert C.camera_cloud_from_msg(C.camera_cloud_to_msg(plain)) == plain


@pytest.mark.parametrize("edit, pattern", [
    (lambda m: [setattr(f, "offset", 0) for f in m.fields[:3]], r"fields 'x' .* and 'y' .* overlap"),
    (lambda m: setattr(m.fields[1], "name", "x"), r"names field\(s\) \['x'\] more than once"),
    (lambda m: setattr(m.fields[3], "datatype", 7), "field 'instance' has datatype 7"),
    (lambda m: setattr(m.fields[4], "offset", 40), "does not fit in point_step"),
])
def test_malformed_cloud_layouts_are_refused(edit, pattern):
    from f2p_common.interfaces import CameraCloud
    cloud = CameraCloud(np.ones((4, 3), np.float32), instance=np.zeros(4, int), label=np.zeros(4, int))
    msg = C.camera_cloud_to_msg(cloud)
    edit(msg)
    with pytest.raises(PointCloudError, match=pattern):
        C.camera_cloud_from_msg(msg)


def test_images_and_camera_info_round_trip_and_refuse_what_they_cannot_be():
    from f2p_ros.conversions import (ConversionError, camera_info_from_msg, camera_info_to_msg, image_from_msg,
                                     image_to_msg)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 3.0, (4, 6)).astype(np.float32)
    depth[0, 0] = np.nan                                                  # no return
    m = image_to_msg(rgb, "camera_color_optical_frame", 7)
    assert (m.encoding, m.step, m.header.stamp.nanosec) == ("rgb8", 18, 7)
    assert (image_from_msg(m) == rgb).all()
    d = image_from_msg(image_to_msg(depth, "cam"))
    assert d.dtype == np.float32 and np.array_equal(d, depth, equal_nan=True)
    bgr = image_to_msg(rgb, "cam")
    bgr.encoding, bgr.data = "bgr8", rgb[..., ::-1].tobytes()
    assert (image_from_msg(bgr) == rgb).all()
    mm = image_to_msg(depth, "cam")
    mm.encoding, mm.step, mm.data = "16UC1", 12, np.full((4, 6), 1500, "<u2").tobytes()
    assert (image_from_msg(mm) == np.float32(1.5)).all()                  # millimetres -> metres
    with pytest.raises(ConversionError, match="encoding 'yuv422'"):
        image_from_msg(type(m)(encoding="yuv422"))
    short = image_to_msg(rgb, "cam")
    short.data = short.data[:-1]
    with pytest.raises(ConversionError, match="do not fit"):
        image_from_msg(short)
    with pytest.raises(ConversionError, match=r"\(H, W, 3\) uint8"):
        image_to_msg(depth.astype(np.float64), "cam")
    info = camera_info_to_msg(640, 480, (415.7, 415.7, 320.0, 240.0), "cam", 3)
    assert camera_info_from_msg(info) == (640, 480, (415.7, 415.7, 320.0, 240.0)) and info.p[0] == 415.7
    info.k = [0.0] * 9
    with pytest.raises(ConversionError, match="no pinhole"):
        camera_info_from_msg(info)


def test_stages_are_the_progress_messages_constants():
    """Every stage the runner reports has TaskProgress's constant, and back (the node converts
    through ``f2p_ros.conversions``); the learner's job stages are LearnerProgress's."""
    from f2p_executor.task_runner import STAGES
    from f2p_interfaces.msg import LearnerProgress, TaskProgress
    from f2p_learning.jobs import JOB_STAGES
    from f2p_ros.conversions import stage_from_msg, stage_to_msg, stages_of
    assert set(stages_of(TaskProgress)) == set(STAGES)
    assert set(stages_of(LearnerProgress)) == set(JOB_STAGES)
    for stage in STAGES:
        assert stage_from_msg(TaskProgress, stage_to_msg(TaskProgress, stage)) == stage
    assert stage_from_msg(TaskProgress, TaskProgress().stage) == "unknown"          # 0 = unset
    with pytest.raises(C.ConversionError, match="no stage .dance."):
        stage_to_msg(TaskProgress, "dance")
