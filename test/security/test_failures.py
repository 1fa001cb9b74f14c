"""Red team, failures that must never go unnoticed (issue 43), each a test:

* a worker thread that dies (perception's segmentation thread died on a label of -1000: 61
  clouds in, 0 scenes out, nothing said) is restarted and reported on ``/diagnostics``, and the
  node's heartbeat says so;
* class labels out of range (-3 became "bag") and frames nobody placed are refused;
* a stopped (SIGSTOP) node is named by the runner within its heartbeat timeout;
* ``kill -9`` of the runner ends its nodes, and the next runner says what it cleaned up;
* a full disk: the spool prunes shipped events, ``f2p-learn`` ends with a report and exit 2,
  a learner job keeps its event queued for later.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import TransitionCallbackReturn

from f2p_common.interfaces import CameraCloud, PointCloudError
from f2p_failure.events import FailureEvent
from f2p_failure.queue import EventQueue
from f2p_interfaces.msg import Heartbeat
from f2p_perception.segmentation import LabelledCloudSegmenter, SensorFrame
from f2p_ros.nodes import ManagedNode
from support.bringup import Runner
from support.failure_fixtures import failure_event
from support.ros import LifecycleClient, collector, wait_until


# ---------------------------------------------------------------------------- dead threads, heartbeats
class Flaky(ManagedNode):
    """A node whose worker raises on its first run, as perception's did."""

    WORKER_RESTART_S = (0.1, 0.2)

    def __init__(self, **kwargs):
        super().__init__("flaky", **kwargs)
        self.runs, self._stop = 0, threading.Event()

    def on_configure(self, state):
        self.create_diagnostics_publisher()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        self._stop.clear()
        self.start_worker(self._work, "work", stop=self._stop.set)
        return super().on_activate(state)

    def _work(self):
        self.runs += 1
        if self.runs == 1:
            raise IndexError("index -1000 is out of bounds for axis 0 with size 8")
        self._stop.wait()


def test_a_dead_worker_is_restarted_reported_and_seen_in_the_heartbeat(ros):
    node = ros.add(Flaky(context=ros.context))
    probe = ros.node("flaky_probe")
    diags, _ = collector(probe, DiagnosticArray, "/diagnostics", 50)
    beats, _ = collector(probe, Heartbeat, "/heartbeat", 50)
    wait_until(lambda: any(b.node == "/flaky" for b in beats))
    client = LifecycleClient(probe, "flaky")
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    wait_until(lambda: node._diag_pub.get_subscription_count() > 0)     # the probe hears /diagnostics
    assert client.transition(Transition.TRANSITION_ACTIVATE)            # the worker dies while activating
    wait_until(lambda: node.runs == 2)                        # restarted
    wait_until(lambda: any(s.level == DiagnosticStatus.ERROR and "worker work died (IndexError" in s.message
                           for m in diags for s in m.status))
    wait_until(lambda: any(b.node == "/flaky" and b.worker_restarts == 1 and b.lifecycle_state == 3
                           and not b.workers_down for b in beats))
    seq = [b.sequence for b in beats if b.node == "/flaky"]
    assert seq == sorted(seq) and len(set(seq)) == len(seq)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("label", [-3, -1000, 8, 1000])
def test_a_class_label_out_of_range_is_refused(label):
    """-3 must not wrap round to "bag", nor -1000 kill a thread: the cloud is refused when read."""
    from f2p_ros.conversions import camera_cloud_from_msg, camera_cloud_to_msg
    pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    labels = np.zeros(50, np.int32)
    msg = camera_cloud_to_msg(CameraCloud(pts, None, np.zeros(50, np.int32), labels, "base_link"))
    raw = np.frombuffer(bytes(msg.data), np.uint8).copy()
    offset = next(f.offset for f in msg.fields if f.name == "label")
    for k in range(50):                                       # the label field of every point, as a driver would send it
        raw[k * msg.point_step + offset:k * msg.point_step + offset + 4] = np.frombuffer(
            np.int32(label).tobytes(), np.uint8)
    msg.data = raw.tobytes()
    with pytest.raises(PointCloudError, match=rf"label values must index OBJECT_CLASSES .*got \[{label}\]"):
        LabelledCloudSegmenter().segment(SensorFrame(camera_cloud_from_msg(msg)))


def test_a_frame_nobody_placed_is_refused_even_with_a_camera_pose(ros):
    from rclpy.parameter import Parameter
    from f2p_perception.perception_node import PerceptionNode
    from f2p_ros.conversions import camera_cloud_to_msg
    node = ros.add(PerceptionNode(context=ros.context, parameter_overrides=[
        Parameter("camera_pose", value=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])]))
    LifecycleClient(ros.node("perception_probe"), "perception").activate()
    pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    cloud = CameraCloud(pts, None, np.zeros(50, np.int32), np.zeros(50, np.int32), "evil_frame")
    with pytest.raises(PointCloudError, match="'evil_frame' is unknown"):
        node.segment(camera_cloud_to_msg(cloud))
    placed = node.segment(camera_cloud_to_msg(dataclasses.replace(cloud, frame_id="camera_color_optical_frame")))
    assert len(placed.objects) == 1 and placed.frame_id == "base_link"


# ---------------------------------------------------------------------------- the runner
def test_a_stopped_node_is_named_by_the_runner(sim_graph):
    runner, _ = sim_graph
    pid = runner.pid_of("planner")
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        code, out = runner.finish(timeout=60)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGCONT)
    assert code == 3 and f"node planner (pid {pid}) hung: no heartbeat for" in out, out
    assert time.monotonic() - t0 < 30


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_kill_9_of_the_runner_ends_its_nodes_and_the_next_runner_starts_clean(sim_graph):
    runner, tmp_path = sim_graph
    pid_file = tmp_path / "ros_home" / "f2p" / "run" / "sim.json"
    pids = {name: entry["pid"] for name, entry in json.loads(pid_file.read_text()).items()}
    assert len(pids) == 9 and pids["planner"] == runner.pid_of("planner")
    runner.proc.kill()
    runner.proc.wait(10)
    wait_until(lambda: not any(_alive(p) for p in pids.values()), timeout=30)     # every node ended with it
    assert pid_file.is_file()                                                     # left behind by the killed runner
    # the killed graph's shared-memory segments stay in /dev/shm, and Fast DDS can crash reopening one
    # (eProsima/Fast-DDS#6501; the runner says so): the runner's cleanup is tested here, not that bug
    again = Runner(tmp_path, env={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"})
    try:
        assert again.running.wait(120), "\n".join(again.lines)
        assert any("a runner of this graph did not stop cleanly; none of its nodes was still running" in line
                   for line in again.lines), again.lines
        assert any("fastdds shm clean" in line for line in again.lines), again.lines
    finally:
        again.proc.send_signal(signal.SIGINT)
        assert again.proc.wait(60) == 0
    assert not pid_file.exists()


def test_the_runner_ends_what_an_unclean_runner_left_running(tmp_path):
    from f2p_bringup.runner import BringupConfig, Graph
    from f2p_bringup.runner import _cmdline
    orphan = subprocess.Popen(["sleep", "300"])
    wait_until(lambda: _cmdline(orphan.pid) == "sleep 300")          # its exec done
    cfg = BringupConfig(nodes=(), environment={"ROS_HOME": str(tmp_path)})
    graph = Graph(cfg, log=lambda _m: None)
    graph.pid_file().parent.mkdir(parents=True)
    graph.pid_file().write_text(json.dumps({"planner": {"pid": orphan.pid, "cmdline": "sleep 300"}}))
    said = graph.clean_up_after_an_unclean_stop()
    assert said[0] == f"ended planner (pid {orphan.pid}) left running by a runner that did not stop cleanly"
    assert len(said) == 2 and "fastdds shm clean" in said[1]
    assert orphan.wait(10) == -signal.SIGKILL and not graph.pid_file().exists()


# ---------------------------------------------------------------------------- a full disk
def test_the_spool_prunes_shipped_events_by_count_bytes_and_age(tmp_path):
    queue = EventQueue(tmp_path, ("shipped",))
    base = failure_event()
    ids = []
    for k in range(6):
        e = dataclasses.replace(base, event_id=FailureEvent.new_id())
        queue.put(e)
        queue.move(e.event_id, "shipped")
        path = tmp_path / "shipped" / f"{e.event_id}.f2pevent"
        os.utime(path, (1000.0 + k, 1000.0 + k))              # oldest first
        ids.append(e.event_id)
    pending = dataclasses.replace(base, event_id=FailureEvent.new_id())
    queue.put(pending)
    size = (tmp_path / "shipped" / f"{ids[0]}.f2pevent").stat().st_size
    assert [p.stem for p in queue.prune("shipped", 4, 10 ** 9, 1e12)] == ids[:2]
    assert [p.stem for p in queue.prune("shipped", 100, 3 * size, 1e12)] == ids[2:3]
    assert [p.stem for p in queue.prune("shipped", 100, 10 ** 9, 1.0)] == ids[3:]          # all older than 1 s
    assert queue.where(pending.event_id) == "pending"                                      # never pending ones


def test_f2p_learn_on_a_full_disk_ends_with_its_report_and_exit_2(tmp_path, monkeypatch):
    from f2p_failure.events import save_event
    from f2p_learning import learn as learn_module
    from f2p_learning.learn import EXIT_CODES, LearnConfig, learn
    from support.failure_fixtures import save_tiny_checkpoint
    event = save_event(failure_event(), tmp_path)
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    cfg = LearnConfig(event=event, checkpoint=ckpt, out_dir=tmp_path / "out", min_free_bytes=2 ** 62)
    report = learn(cfg)                                        # checked up front
    assert report.outcome == "no_space" and EXIT_CODES[report.outcome] == 2 and "min_free_bytes" in report.result
    assert json.loads((tmp_path / "out" / "learn_report.json").read_text())["outcome"] == "no_space"

    def fill(*_a, **_k):
        (tmp_path / "out2" / "d_plus").mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(learn_module, "_learn", fill)          # the disk fills up mid-run
    report = learn(dataclasses.replace(cfg, out_dir=tmp_path / "out2", min_free_bytes=0))
    assert report.outcome == "no_space" and "filled up" in report.result
    assert not (tmp_path / "out2" / "d_plus").exists() and (tmp_path / "out2" / "learn_report.json").is_file()


def test_a_learner_job_on_a_full_disk_keeps_its_event_queued(tmp_path):
    from f2p_learning.jobs import Learner, LearnerConfig
    from f2p_learning.learn import LearnConfig
    from support.failure_fixtures import save_tiny_checkpoint
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    learner = Learner(LearnerConfig(tmp_path / "queue", tmp_path / "store", ckpt,
                                    learn=LearnConfig(min_free_bytes=2 ** 62)))
    event = failure_event()
    learner.submit(event)
    result = learner.run_next()
    assert (result.outcome, result.state) == ("no_space", "pending"), result.reason
    assert learner.queue.where(event.event_id) == "pending"
