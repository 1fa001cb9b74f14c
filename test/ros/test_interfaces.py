"""Every f2p message, service and action round-trips over real DDS on loopback.

The type lists come from the repository's msg/ srv/ action/ folders, so a new interface
file is covered without touching this test. Every field (nested ones included) carries a
distinct non-default value (support.fill), and what arrives must equal what was sent.
"""
from __future__ import annotations

import importlib
import pathlib
import threading

import pytest
import rclpy.node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future

from f2p_ros.actions import ActionClient, ActionServer
from support.fill import fill
from support.ros import WAIT_S, wait_future

ROOT = pathlib.Path(__file__).resolve().parents[2] / "src" / "f2p_interfaces"


def _names(folder: str, ext: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / folder).glob(f"*.{ext}"))


MSGS = _names("msg", "msg")
SRVS = _names("srv", "srv")
ACTIONS = _names("action", "action")


def _load(kind: str, name: str):
    return getattr(importlib.import_module(f"f2p_interfaces.{kind}"), name)


def test_interface_folders_are_not_empty():
    # Guards the parametrisation below against a moved folder silently testing nothing.
    assert len(MSGS) >= 10 and len(SRVS) >= 5 and len(ACTIONS) >= 2


@pytest.mark.parametrize("name", MSGS)
def test_message_round_trip(ros, name):
    msg_type = _load("msg", name)
    sent = fill(msg_type())
    assert sent != msg_type(), "fill() must change every message"
    # Reliable + transient-local: the sample waits for the late-joining subscriber, so
    # no sleep is needed for discovery.
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    topic = f"/f2p_test/{name.lower()}"

    received = Future()
    pub_node, sub_node = ros.node(f"pub_{name.lower()}"), ros.node(f"sub_{name.lower()}")
    pub = pub_node.create_publisher(msg_type, topic, qos)
    pub.publish(sent)
    sub_node.create_subscription(
        msg_type, topic, lambda m: received.done() or received.set_result(m), qos)
    got = wait_future(received)
    assert got == sent


@pytest.mark.parametrize("name", SRVS)
def test_service_round_trip(ros, name):
    srv_type = _load("srv", name)
    request, response = fill(srv_type.Request()), fill(srv_type.Response())
    seen = []

    def handle(req, resp):
        seen.append(req)
        return response

    server = ros.node(f"server_{name.lower()}")
    server.create_service(srv_type, f"/f2p_test/{name.lower()}", handle)
    client_node = ros.node(f"client_{name.lower()}")
    client = client_node.create_client(srv_type, f"/f2p_test/{name.lower()}")
    assert client.wait_for_service(timeout_sec=WAIT_S), "service not discovered"
    got = wait_future(client.call_async(request))
    assert seen == [request]
    assert got == response


@pytest.mark.parametrize("name", ACTIONS)
def test_action_round_trip(ros, name):
    action_type = _load("action", name)
    goal = fill(action_type.Goal())
    feedback, result = fill(action_type.Feedback()), fill(action_type.Result())
    goals_seen, feedback_seen = [], []
    feedback_arrived = threading.Event()

    def execute(goal_handle):
        goals_seen.append(goal_handle.request)
        # The feedback topic may match a moment after the goal service does; resend until
        # the client has it (waiting on an event, not sleeping).
        for _ in range(int(WAIT_S / 0.1)):
            goal_handle.publish_feedback(feedback)
            if feedback_arrived.wait(0.1):
                break
        goal_handle.succeed()
        return result

    server_node = rclpy.node.Node(f"aserver_{name.lower()}", context=ros.context)
    ActionServer(server_node, action_type, f"/f2p_test/{name.lower()}", execute)
    ros.add(server_node)
    client_node = rclpy.node.Node(f"aclient_{name.lower()}", context=ros.context)
    client = ActionClient(client_node, action_type, f"/f2p_test/{name.lower()}")
    ros.add(client_node)
    assert client.wait_for_server(timeout_sec=WAIT_S), "action server not discovered"

    def on_feedback(msg):
        feedback_seen.append(msg.feedback)
        feedback_arrived.set()

    handle = wait_future(client.send_goal_async(goal, feedback_callback=on_feedback))
    assert handle.accepted
    # execute() may resend feedback for up to WAIT_S before it succeeds: the result wait must
    # outlast that, so a feedback that arrives late or never fails on its own assertion below
    # rather than as a result timeout.
    wrapped = wait_future(handle.get_result_async(), timeout=2 * WAIT_S)
    assert goals_seen == [goal]
    assert feedback_seen, f"no feedback reached the client within {WAIT_S} s"
    assert feedback_seen[0] == feedback
    assert wrapped.result == result
