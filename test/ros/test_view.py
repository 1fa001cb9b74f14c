"""``f2p-view``: a bag of the graph's topics becomes one rerun timeline of what the stack saw,
believed, did, got wrong and learned (read back with rerun's own ``rrd print``); unreadable
messages are skipped and counted, a damaged bag is shown up to the damage; the web viewer is
served on 127.0.0.1 only."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.serialization import serialize_message

from f2p_common.interfaces import ModelInfo, Plan
from f2p_interfaces.msg import LearnerProgress, TaskProgress
from f2p_relations.detectors import GeometricDetector
from f2p_ros.bag import BagWriter, msgtype_of
from f2p_ros.conversions import (failure_event_to_msg, model_info_to_msg, ns_to_stamp, plan_to_msg, relations_to_msg,
                                 scene_to_msg, xyz_to_cloud)
from f2p_viz.view_node import ViewConfig, _rerun_env, rerun_binary, serve, view_bag
from support.failure_fixtures import handmade_event
from support.scenes import cup_in_bin
from support.ros import wait_until

T0 = 1_765_000_000_000_000_000


def _graph_bag(path: Path, bad_scene: bool = False) -> Path:
    """A bag as the bag_recorder writes one: a scene (a cup in a bin on a table), its relations,
    a plan, the executor at its step, a failure of that step, the model, the learner, a cloud."""
    scene = cup_in_bin("world", T0)
    n = 3
    step = {"unary": np.zeros((n, 3), np.float32), "binary": np.zeros((n, n, 9), np.float32)}
    plan = Plan([("pick_place", 2)], [[0.1, -0.2, 0.05]], [step], 0.9, [("inside", 2, 1)], scene.object_ids,
                plan_id="plan-7", frame_id="world")
    progress = TaskProgress(goal_id="goal-1", stage=TaskProgress.STAGE_EXECUTE, plan_id="plan-7", step_index=0,
                            num_steps=1, status="pick_place cup_2")
    learner = LearnerProgress(event_id=handmade_event().event_id, stage=LearnerProgress.STAGE_FINE_TUNE, fraction=0.5,
                              status="epoch 100/200")
    pose = PoseStamped()
    pose.header.frame_id, pose.pose.position.z, pose.pose.orientation.w = "world", 1.4, 1.0
    rng = np.random.default_rng(0)
    cloud = xyz_to_cloud(rng.normal(size=(5000, 3)).astype(np.float32), rng.integers(0, 255, (5000, 3)).astype(np.uint8),
                         frame_id="camera_color_optical_frame", stamp=ns_to_stamp(T0))
    scene_msg = scene_to_msg(scene)
    if bad_scene:
        scene_msg.objects[0].label = "spaceship"             # no class of the vocabulary
    messages = [("/segmented_scene", scene_msg), ("/relation_state", relations_to_msg(GeometricDetector().detect(scene))),
                ("/camera/pose", pose), ("/camera/points", cloud), ("/plan", plan_to_msg(plan)),
                ("/task_progress", progress), ("/failure_events", failure_event_to_msg(handmade_event())),
                ("/model_info", model_info_to_msg(ModelInfo("skill_effect", "v2", "v1", metrics={"detection_f1": 0.97}))),
                ("/learner/progress", learner)]
    w = BagWriter(path)
    for topic, msg in messages:
        w.add_topic(topic, msgtype_of(type(msg)))
    for k, (topic, msg) in enumerate(messages):
        w.write(topic, T0 + k * 100_000_000, serialize_message(msg))
        w.flush()                                             # a chunk each, as the recorder's fsync period makes
    w.close()
    return path


def _rrd_text(rrd: Path) -> str:
    """Everything in ``rrd`` as rerun's own reader prints it (entities, components, values)."""
    out = subprocess.run([str(rerun_binary()), "rrd", "print", "-vvv", str(rrd)],
                         capture_output=True, text=True, timeout=60, env={**_rerun_env(), "COLUMNS": "1000"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_bag_becomes_one_timeline_of_what_the_stack_saw_did_and_got_wrong(tmp_path):
    bag = _graph_bag(tmp_path / "bag")
    r = view_bag(ViewConfig(bag=bag, serve=False))
    assert r.rrd == bag / "view.rrd" and r.rrd.is_file() and not (bag / "view.rrd.part").exists()
    assert r.messages == {name: 1 for name in ("segmented_scene", "relation_state", "camera/pose", "camera/points",
                                                 "plan", "task_progress", "failure_events", "model_info",
                                                 "learner/progress")}
    assert (r.unreadable, r.failures, r.damage) == (0, 1, None)
    text = _rrd_text(r.rrd)
    for entity in ("/world/objects/box", "/world/labels/text", "/world/relations/lines", "/world/step/arrow",
                   "/world/mismatches/lines", "/world/camera", "/world/camera/cloud", "/plan", "/timeline/task",
                   "/timeline/failures", "/timeline/model", "/timeline/learner"):
        assert entity in text, entity
    # what a reviewer reads: the failure's mismatched relation, the plan, the learner and the model
    assert "inside(cup_2, bin_1): predicted 0.90, observed no" in text
    assert "`pick_place` cup_2" in text and "p(goal) = **0.90**" in text
    assert "fine_tune 50 % epoch 100/200" in text and "serving skill_effect v2, parent v1" in text
    assert "ros_time" in text


def test_an_unreadable_message_is_skipped_and_a_damaged_bag_is_shown_up_to_the_damage(tmp_path):
    r = view_bag(ViewConfig(bag=_graph_bag(tmp_path / "bad", bad_scene=True), serve=False))
    assert r.unreadable == 1 and r.failures == 1 and r.messages["plan"] == 1
    bag = _graph_bag(tmp_path / "cut")
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) * 2 // 3])            # the recorder killed mid-file
    said = []
    r = view_bag(ViewConfig(bag=bag, serve=False), say=said.append)
    assert r.damage and any("damaged" in s for s in said) and r.rrd.is_file()
    assert 0 < sum(r.messages.values()) < 9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_web_viewer_is_served_on_localhost_only(tmp_path):
    r = view_bag(ViewConfig(bag=_graph_bag(tmp_path / "bag"), serve=False))
    cfg = ViewConfig(bag=tmp_path / "bag", web_port=_free_port(), grpc_port=_free_port())
    proc, url = serve(cfg, r.rrd)
    try:
        assert url == f"http://127.0.0.1:{cfg.web_port}/?url=rerun%2Bhttp://127.0.0.1:{cfg.grpc_port}/proxy"

        def accepts() -> bool:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with socket.create_connection(("127.0.0.1", cfg.web_port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(accepts, timeout=60, poll=0.2)
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        ours = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(f":{cfg.web_port}")]
        assert ours == [f"127.0.0.1:{cfg.web_port}"], listening              # not 0.0.0.0
    finally:
        proc.terminate()
        proc.wait(10)


def test_live_the_graphs_messages_join_the_view_as_they_arrive(tmp_path, ros):
    import rerun as rr

    from f2p_interfaces.msg import FailureEvent as FailureEventMsg
    from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
    from f2p_ros import qos
    from f2p_viz.view_node import ViewerNode
    graph = ros.node("graph")                             # publishes as perception and the executor do
    scenes = graph.create_publisher(SegmentedSceneMsg, "segmented_scene", qos.latched())
    failures = graph.create_publisher(FailureEventMsg, "failure_events", qos.events())
    scene = cup_in_bin("world", T0)
    scenes.publish(scene_to_msg(scene))                   # before the view starts: latched, it still arrives
    rec = rr.RecordingStream("f2p", recording_id="f2p-view-live-test", send_properties=False)
    rec.save(tmp_path / "live.rrd")
    view = ros.add(ViewerNode(rec, ViewConfig(live=True, serve=False), context=ros.context))
    wait_until(lambda: failures.get_subscription_count() > 0, timeout=30, poll=0.05)
    failures.publish(failure_event_to_msg(handmade_event()))
    wait_until(lambda: view.feed.counts.get("failure_events") == 1 and view.feed.counts.get("segmented_scene") == 1,
               timeout=30, poll=0.05)
    rec.flush(timeout_sec=30)
    rec.disconnect()
    text = _rrd_text(tmp_path / "live.rrd")
    assert "/world/objects/box" in text and "/world/mismatches/lines" in text
    assert "inside(cup_2, bin_1): predicted 0.90, observed no" in text and view.feed.unreadable == 0
