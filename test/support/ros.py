"""ROS test harness: waits on futures/conditions, a background-spinning executor."""
from __future__ import annotations

import threading

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

    def __init__(self):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
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


