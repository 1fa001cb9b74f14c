"""ManagedNode owns what each lifecycle phase made: endpoints made at configure go at cleanup,
those made at activate and its worker threads go at deactivate (workers stopped and joined
first), those made with the node go with it; driven through the real lifecycle services."""
from __future__ import annotations

import threading

from lifecycle_msgs.msg import Transition
from std_msgs.msg import String
from std_srvs.srv import Trigger

from f2p_interfaces.action import RunTask
from f2p_ros.actions import ActionServer
from f2p_ros.nodes import ManagedNode
from support.ros import WAIT_S, LifecycleClient


class _Phases(ManagedNode):
    """Makes one endpoint of each kind per phase and a worker that records how it ended."""

    def __init__(self, **kwargs):
        super().__init__("phases", **kwargs)
        self.until_destroyed(ActionServer(self, RunTask, "phases_action", lambda goal: RunTask.Result()))
        self.worker_stopped = threading.Event()
        self.publishing_while_stopping = []

    def on_configure(self, state):
        self.pub = self.until_cleanup(self.create_lifecycle_publisher(String, "phases_out", 10))
        self.diag = self.create_diagnostics_publisher()
        self.client = self.until_cleanup(self.create_client(Trigger, "phases_other"))
        return super().on_configure(state)

    def on_activate(self, state):
        self.until_deactivate(self.create_subscription(String, "phases_in", lambda _m: None, 10))
        self.until_deactivate(self.create_timer(10.0, lambda: None))
        self.until_deactivate(self.create_service(Trigger, "phases_srv", lambda _q, r: r))
        self._stop = threading.Event()

        def work():
            self._stop.wait()
            # the endpoints are still there while the worker stops: it may publish its last words
            self.publishing_while_stopping.append(self.pub in self.publishers and _timers(self) == 1)
            self.worker_stopped.set()
        self.start_worker(work, "work", stop=self._stop.set, join_timeout=WAIT_S)
        return super().on_activate(state)


def _timers(node) -> int:
    """The node's timers besides its heartbeat's (which lives as long as the node)."""
    return sum(t is not node.heartbeat_timer for t in node.timers)


def _topics(node) -> dict[str, int]:
    return {"pubs": sum(p.topic_name == "/phases_out" for p in node.publishers),
            "subs": sum(s.topic_name == "/phases_in" for s in node.subscriptions), "timers": _timers(node),
            "clients": sum(c.srv_name.endswith("phases_other") for c in node.clients),
            "services": sum(s.srv_name.endswith("phases_srv") for s in node.services)}


def test_each_phase_releases_what_it_made(ros):
    node = ros.add(_Phases(context=ros.context))
    lc = LifecycleClient(ros.node("phases_probe"), "phases")
    none = {"pubs": 0, "subs": 0, "timers": 0, "clients": 0, "services": 0}
    assert _topics(node) == none
    assert lc.transition(Transition.TRANSITION_CONFIGURE)
    assert _topics(node) == {**none, "pubs": 1, "clients": 1}
    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    assert _topics(node) == {"pubs": 1, "subs": 1, "timers": 1, "clients": 1, "services": 1}
    assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    assert node.worker_stopped.is_set() and node.publishing_while_stopping == [True]
    assert _topics(node) == {**none, "pubs": 1, "clients": 1}
    assert lc.transition(Transition.TRANSITION_ACTIVATE)          # a second activation makes its own again
    assert _topics(node)["subs"] == 1 and _topics(node)["timers"] == 1
    assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    assert lc.transition(Transition.TRANSITION_CLEANUP)
    assert _topics(node) == none
    assert lc.transition(Transition.TRANSITION_CONFIGURE) and lc.transition(Transition.TRANSITION_ACTIVATE)
    assert lc.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)    # from active: everything goes
    assert _topics(node) == none and node.publishing_while_stopping == [True, True, True]


_HUNG_NODE = """
import threading
import rclpy.node
from f2p_ros import nodes
nodes.SHUTDOWN_GRACE_S = 1.0

def make():
    node = rclpy.node.Node("hung_node")
    def hang():
        print("callback entered", flush=True)
        threading.Event().wait()               # a callback that never returns
    node.create_timer(0.01, hang)
    return node

nodes.run_node(make)
"""


def test_a_node_whose_callback_hangs_still_ends_on_sigterm(tmp_path):
    """SIGTERM (what PR_SET_PDEATHSIG sends when the runner is killed) ends a node even when a
    callback never returns: the executor's shutdown would otherwise wait for it for ever."""
    import os
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", _HUNG_NODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "ROS_HOME": str(tmp_path)})
    try:
        assert proc.stdout.readline().strip() == "callback entered"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 1
        assert "shutdown did not finish within 1 s: exiting" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
