"""Red team, failure events (issue 43): each robot signs its events (Ed25519, a key per robot);
the robot's recorder takes only its own robot's events, keeps the signature beside each and
ships it; the learner takes only events signed by an enrolled robot. A forged event with
recomputed SHA256SUMS, an unenrolled robot, a robot id that is a path: refused."""
from __future__ import annotations

import dataclasses
import threading

import pytest
from rclpy.parameter import Parameter

from f2p_common.keys import SignatureError, generate_key_pair
from f2p_executor.failure_recorder_node import SPOOL_STATES, FailureRecorderNode
from f2p_failure.events import FailureEvent, sign_event, verify_event
from f2p_failure.queue import EventQueue
from f2p_interfaces.srv import SubmitFailure
from f2p_learning.jobs import Learner, LearnerConfig
from f2p_ros.conversions import failure_event_from_msg, failure_event_to_msg
from support.failure_fixtures import failure_event, save_tiny_checkpoint
from support.ros import WAIT_S, LifecycleClient, wait_future, wait_until


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("robot_keys")
    enrolled = root / "enrolled"
    enrolled.mkdir()
    pub = generate_key_pair(root / "sim.pem")
    (enrolled / "sim.pub").write_bytes(pub.read_bytes())
    generate_key_pair(root / "mallory.pem")
    return {"robot": root / "sim.pem", "robot_pub": pub, "mallory": root / "mallory.pem", "enrolled": enrolled}


def test_a_signature_covers_exactly_the_event_even_after_a_trip_over_ros(keys):
    event = dataclasses.replace(failure_event(), robot_id="sim")
    signature = sign_event(event, keys["robot"])
    verify_event(failure_event_from_msg(failure_event_to_msg(event)), signature, keys["robot_pub"])
    forged = dataclasses.replace(event, params=[p * 0.5 for p in event.params])   # SHA256SUMS recomputed on save
    with pytest.raises(SignatureError, match="bad signature"):
        verify_event(forged, signature, keys["robot_pub"])
    with pytest.raises(SignatureError, match="bad signature"):
        verify_event(event, sign_event(event, keys["mallory"]), keys["robot_pub"])


def test_the_spool_keeps_a_signature_with_its_event(keys, tmp_path):
    queue = EventQueue(tmp_path, ("shipped",))
    event = dataclasses.replace(failure_event(), robot_id="sim", event_id=FailureEvent.new_id())
    signature = sign_event(event, keys["robot"])
    queue.put(event, signature)
    assert queue.signature(event.event_id) == signature
    queue.move(event.event_id, "shipped")
    assert queue.signature(event.event_id) == signature
    assert queue.prune("shipped", 0, 0, 0.0) and not list((tmp_path / "shipped").iterdir())


def test_the_learner_takes_only_events_signed_by_their_enrolled_robot(keys, tmp_path):
    learner = Learner(LearnerConfig(tmp_path / "q", tmp_path / "s", save_tiny_checkpoint(tmp_path / "t.pt"),
                                    enrolled_robots=keys["enrolled"]))
    event = dataclasses.replace(failure_event(), robot_id="sim", event_id=FailureEvent.new_id())
    for ev, signature, pattern in (
            (event, "", "not signed"),
            (event, sign_event(event, keys["mallory"]), "bad signature"),
            (dataclasses.replace(event, robot_id="ur5"), sign_event(dataclasses.replace(event, robot_id="ur5"),
                                                                    keys["robot"]), "'ur5' is not enrolled"),
            (dataclasses.replace(event, robot_id="../sim"), "00", "names no enrolled robot")):
        with pytest.raises(SignatureError, match=pattern):
            learner.submit(ev, signature)
    assert learner.queue.stats().pending == 0
    assert learner.submit(event, sign_event(event, keys["robot"]))[1] == "queued"
    assert learner.queue.signature(event.event_id) == sign_event(event, keys["robot"])


class SignedLearner:
    """The learner's submit_failure as a test peer: records each event's signature."""

    def __init__(self, node):
        self.signatures, self.lock = {}, threading.Lock()
        node.create_service(SubmitFailure, "/submit_failure", self._on)

    def _on(self, req, resp):
        with self.lock:
            self.signatures[req.event.event_id] = req.signature
        resp.event_id, resp.accepted, resp.message = req.event.event_id, True, "queued"
        return resp


def test_the_recorder_takes_only_its_robots_events_and_ships_their_signature(ros, keys, tmp_path):
    ros.add(FailureRecorderNode(context=ros.context, parameter_overrides=[
        Parameter("spool_dir", value=str(tmp_path / "spool")), Parameter("retry_initial_s", value=0.1),
        Parameter("producer_keys", value=[str(keys["robot_pub"])])]))
    probe = ros.node("intruder")
    LifecycleClient(probe, "failure_recorder").activate()
    record = probe.create_client(SubmitFailure, "/record_failure")
    assert record.wait_for_service(timeout_sec=WAIT_S)
    event = dataclasses.replace(failure_event(), robot_id="sim", event_id=FailureEvent.new_id())
    msg = failure_event_to_msg(event)
    for signature in ("", sign_event(event, keys["mallory"])):
        resp = wait_future(record.call_async(SubmitFailure.Request(event=msg, signature=signature)))
        assert not resp.accepted and not resp.retry and resp.error_code == SubmitFailure.Response.ERROR_NOT_AUTHENTIC
    queue = EventQueue(tmp_path / "spool", SPOOL_STATES)
    assert queue.stats().pending == 0
    signature = sign_event(event, keys["robot"])
    assert wait_future(record.call_async(SubmitFailure.Request(event=msg, signature=signature))).accepted
    learner = SignedLearner(probe)
    wait_until(lambda: queue.stats().moved["shipped"] == 1)
    assert learner.signatures == {event.event_id: signature}


def test_an_oversized_event_is_refused_before_it_is_converted():
    import numpy as np
    from f2p_ros.conversions import ConversionError
    msg = failure_event_to_msg(failure_event())
    big = msg.observation_before.objects[0].cloud
    big.data = bytes(np.zeros(70 * 2 ** 20, np.uint8))              # 70 MiB in one segment's cloud
    with pytest.raises(ConversionError, match=r"too large: .* 70.[01] MiB of clouds \(at most 64 MiB\)"):
        failure_event_from_msg(msg)
    with pytest.raises(ConversionError, match="segments \\(at most 2\\)"):
        failure_event_from_msg(failure_event_to_msg(failure_event()), max_segments=2)
