"""ROS test harness: waits on futures/conditions, a background-spinning executor, a lifecycle
client and a topic collector."""
from __future__ import annotations

import threading

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState

WAIT_S = 15.0  # generous upper bound for DDS discovery on a loaded 2-core CI machine


def wait_future(future, timeout: float = WAIT_S):
    """Block until an rclpy Future is done (spun by the background executor); its result."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f"future not done within {timeout} s")
    return future.result()


def wait_until(predicate, timeout: float = WAIT_S, poll: float = 0.01) -> None:
    """Poll a condition (e.g. a DDS match count) until true; TimeoutError otherwise."""
    event = threading.Event()
    deadline = timeout / poll
    for _ in range(int(deadline)):
        if predicate():
            return
        event.wait(poll)
    raise TimeoutError(f"condition not met within {timeout} s")


class RosHarness:
    """An rclpy context with a MultiThreadedExecutor spinning in a background thread."""

    def __init__(self, threads: int = 4):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self._nodes = []
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node):
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str):
        import rclpy.node

        return self.add(rclpy.node.Node(name, context=self.context))

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        for n in self._nodes:
            n.destroy_node()
        self.context.try_shutdown()


class LifecycleClient:
    """Drives a lifecycle node through its real change_state / get_state services."""

    def __init__(self, node, target: str):
        self.change = node.create_client(ChangeState, f"/{target}/change_state")
        self.get = node.create_client(GetState, f"/{target}/get_state")
        assert self.change.wait_for_service(timeout_sec=WAIT_S)
        assert self.get.wait_for_service(timeout_sec=WAIT_S)

    def transition(self, transition_id: int) -> bool:
        return wait_future(self.change.call_async(
            ChangeState.Request(transition=Transition(id=transition_id)))).success

    def state(self) -> int:
        return wait_future(self.get.call_async(GetState.Request())).current_state.id

    def wait_answering(self, timeout: float = WAIT_S) -> None:
        """Until the node answers get_state: after a restart, DDS still lists the dead process's
        services for a while, so wait_for_service alone does not say the new one is there."""
        def answers() -> bool:
            try:
                wait_future(self.get.call_async(GetState.Request()), timeout=1.0)
                return True
            except TimeoutError:
                return False
        wait_until(answers, timeout)

    def activate(self) -> None:
        """unconfigured -> inactive -> active; AssertionError naming the transition that failed."""
        assert self.transition(Transition.TRANSITION_CONFIGURE), "configure failed"
        assert self.transition(Transition.TRANSITION_ACTIVATE), "activate failed"
        assert self.state() == State.PRIMARY_STATE_ACTIVE


def collector(node, msg_type, topic, qos, predicate=lambda m: True):
    """Subscribe; returns (the messages that passed ``predicate``, an Event set at the first)."""
    box, event = [], threading.Event()

    def cb(m):
        if predicate(m):
            box.append(m)
            event.set()
    node.create_subscription(msg_type, topic, cb, qos)
    return box, event
