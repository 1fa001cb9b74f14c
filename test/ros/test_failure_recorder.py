"""The failure recorder: the durable event queue (ROS-free) and the ``failure_recorder`` node over
DDS — events stored before they are acknowledged, shipped to the learner once it answers (the
spool grows while it is absent and drains when it returns), refused ones kept with the reason,
a spool that cannot be written refusing instead of losing, a restart resuming from the folder."""
from __future__ import annotations

import dataclasses
import errno
import threading

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter

from f2p_executor.failure_recorder_node import SPOOL_STATES, FailureRecorderNode
from f2p_failure.events import FailureEvent, FailureEventError, load_event
from f2p_failure.queue import EventQueue
from f2p_interfaces.srv import SubmitFailure
from f2p_ros.conversions import failure_event_to_msg
from support.failure_fixtures import handmade_event
from support.ros import WAIT_S, LifecycleClient, collector, wait_future, wait_until


def events(n, seed=0):
    return [handmade_event(seed + i, event_id=FailureEvent.new_id()) for i in range(n)]


# ---------------------------------------------------------------------------- the queue
def test_queue_stores_once_moves_durably_and_counts(tmp_path):
    q = EventQueue(tmp_path / "spool", ("shipped",))
    a, b = events(2)
    path, new = q.put(a)
    assert new and path.parent == q.folder and q.where(a.event_id) == "pending"
    assert q.put(a) == (path, False)                           # idempotent by event id
    q.put(b)
    assert [p.stem for p in q.pending()] == [a.event_id, b.event_id]
    moved = q.move(a.event_id, "shipped")
    assert q.where(a.event_id) == "shipped" and load_event(moved).event_id == a.event_id
    assert q.put(a) == (moved, False)                          # a resend after the move is not queued again
    stats = q.stats()
    assert (stats.pending, stats.moved) == (1, {"shipped": 1}) and stats.oldest_age_s >= 0
    with pytest.raises(KeyError, match="not pending"):
        q.move(a.event_id, "shipped")
    with pytest.raises(ValueError, match="unknown state"):
        q.move(b.event_id, "lost")
    with pytest.raises(FailureEventError):
        q.put(dataclasses.replace(b, event_id=FailureEvent.new_id(), skill="teleport"))
    assert q.stats().pending == 1


def test_a_full_disk_queues_nothing(tmp_path, monkeypatch):
    import f2p_failure.events as ev
    q = EventQueue(tmp_path / "spool", ())

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ev, "write_atomic", full)
    with pytest.raises(OSError):
        q.put(events(1)[0])
    assert q.pending() == []


# ---------------------------------------------------------------------------- the node over DDS
class FakeLearner:
    """The learner's SubmitFailure, as a test peer: accepts (or refuses) and counts by event id."""

    def __init__(self, node, accept=True, retry=False):
        self.received, self.accept, self.retry, self.lock = [], accept, retry, threading.Lock()
        self.srv = node.create_service(SubmitFailure, "/submit_failure", self._on)

    def _on(self, req, resp):
        with self.lock:
            self.received.append(req.event.event_id)
        resp.event_id, resp.accepted, resp.retry = req.event.event_id, self.accept, self.retry and not self.accept
        resp.message = "queued" if self.accept else "not active" if self.retry else "missing segments"
        return resp


def _recorder(ros, spool, **params):
    ros.add(FailureRecorderNode(context=ros.context, parameter_overrides=[
        Parameter("spool_dir", value=str(spool)), Parameter("retry_initial_s", value=0.1),
        Parameter("retry_max_s", value=0.4), *[Parameter(k, value=v) for k, v in params.items()]]))
    probe = ros.node("recorder_probe")
    LifecycleClient(probe, "failure_recorder").activate()
    record = probe.create_client(SubmitFailure, "/record_failure")
    assert record.wait_for_service(timeout_sec=WAIT_S)
    return probe, record


def test_events_wait_for_the_learner_then_ship_once_each(ros, tmp_path):
    spool = tmp_path / "spool"
    probe, record = _recorder(ros, spool)
    first, second, third = events(3)
    resp = wait_future(record.call_async(SubmitFailure.Request(event=failure_event_to_msg(first))))
    assert resp.accepted and resp.event_id == first.event_id and resp.stored_uri.endswith(".f2pevent")
    again = wait_future(record.call_async(SubmitFailure.Request(event=failure_event_to_msg(first))))
    assert again.accepted and again.message == "already recorded"
    bad = failure_event_to_msg(events(1, seed=5)[0])
    bad.observation_before.objects.pop()
    refused = wait_future(record.call_async(SubmitFailure.Request(event=bad)))
    assert not refused.accepted and not refused.retry and refused.error_code == SubmitFailure.Response.ERROR_MALFORMED
    assert wait_future(record.call_async(SubmitFailure.Request(event=failure_event_to_msg(second)))).accepted
    EventQueue(spool, ()).put(third)                          # an event left by an earlier run
    queue = EventQueue(spool, SPOOL_STATES)
    wait_until(lambda: queue.stats().pending == 3)            # no learner yet: the spool grows
    learner = FakeLearner(probe)
    wait_until(lambda: queue.stats().pending == 0)            # it returned: the spool drains
    assert sorted(learner.received) == sorted(e.event_id for e in (first, second, third))
    assert queue.stats().moved["shipped"] == 3


def test_a_refused_event_is_kept_with_the_reason(ros, tmp_path):
    spool = tmp_path / "spool"
    probe, record = _recorder(ros, spool)
    diags, _ = collector(probe, DiagnosticArray, "/diagnostics", 20)
    FakeLearner(probe, accept=False)
    event = events(1)[0]
    assert wait_future(record.call_async(SubmitFailure.Request(event=failure_event_to_msg(event)))).accepted
    queue = EventQueue(spool, SPOOL_STATES)
    wait_until(lambda: queue.where(event.event_id) == "refused")
    wait_until(lambda: any("missing segments" in kv.value for m in diags for s in m.status for kv in s.values))


def test_an_event_the_learner_cannot_take_yet_stays_and_ships_once_it_can(ros, tmp_path):
    # found by benchmarks/reliability.py: a learner between configure and activate said "not
    # active" and the recorder filed the event as refused, never to be sent again
    spool = tmp_path / "spool"
    probe, record = _recorder(ros, spool)
    learner = FakeLearner(probe, accept=False, retry=True)
    event = events(1)[0]
    assert wait_future(record.call_async(SubmitFailure.Request(event=failure_event_to_msg(event)))).accepted
    queue = EventQueue(spool, SPOOL_STATES)
    wait_until(lambda: len(learner.received) >= 2)               # asked again, with back-off
    assert queue.where(event.event_id) == "pending"
    learner.accept = True
    wait_until(lambda: queue.where(event.event_id) == "shipped")


def test_a_spool_that_cannot_be_written_refuses_and_says_so(ros, tmp_path, monkeypatch):
    import f2p_failure.events as ev
    probe, record = _recorder(ros, tmp_path / "spool")
    diags, errored = collector(probe, DiagnosticArray, "/diagnostics", 20,
                               lambda m: any(s.level == DiagnosticStatus.ERROR for s in m.status))

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(ev, "write_atomic", read_only)
    resp = wait_future(record.call_async(SubmitFailure.Request(event=failure_event_to_msg(events(1)[0]))))
    assert not resp.accepted and resp.retry and "Read-only file system" in resp.message and resp.stored_uri == ""
    assert errored.wait(WAIT_S)
    bad = failure_event_to_msg(events(1)[0])
    bad.skill.skill = "teleport"
    resp = wait_future(record.call_async(SubmitFailure.Request(event=bad)))
    assert not resp.accepted and not resp.retry and "malformed failure event" in resp.message


def test_a_restarted_recorder_ships_what_its_spool_holds(ros, tmp_path):
    spool = tmp_path / "spool"
    for e in events(2, seed=5):
        EventQueue(spool, ()).put(e)                           # left by a recorder killed earlier
    probe, _ = _recorder(ros, spool)
    learner = FakeLearner(probe)
    queue = EventQueue(spool, SPOOL_STATES)
    wait_until(lambda: queue.stats().moved["shipped"] == 2)
    assert len(learner.received) == 2
