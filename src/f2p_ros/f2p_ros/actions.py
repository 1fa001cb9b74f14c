"""rclpy's action client and server, safe to create while an executor spins their node.

rclpy 9.1 (Kilted) adds an ``ActionClient`` to its node's waitables before it creates the lock
that ``get_num_entities`` takes, and an ``ActionServer`` before it creates the logger its goal
callbacks use. An executor spinning the node in another thread that meets the new entity in
between raises AttributeError in its spin thread, which then dies: nothing of that node is
spun again, and every later future times out (seen in CI under load: a RunTask client made
beside a spinning test harness; 1 run in 20 of the interface round trips). The classes here
create those attributes first, so where and when an action endpoint is made no longer matters.
Every f2p node, test and benchmark makes its action endpoints through them.
"""
from __future__ import annotations

import threading

from rclpy.action import ActionClient as _RclpyActionClient
from rclpy.action import ActionServer as _RclpyActionServer


class ActionClient(_RclpyActionClient):
    """``rclpy.action.ActionClient`` with its lock made before it joins the node's wait set."""

    def __init__(self, node, action_type, action_name, **kwargs):
        lock = threading.Lock()
        self._lock = lock
        super().__init__(node, action_type, action_name, **kwargs)
        self._lock = lock            # the one an executor thread may already hold


class ActionServer(_RclpyActionServer):
    """``rclpy.action.ActionServer`` with its logger made before it joins the node's wait set."""

    def __init__(self, node, action_type, action_name, execute_callback, **kwargs):
        self._logger = node.get_logger().get_child("action_server")
        super().__init__(node, action_type, action_name, execute_callback, **kwargs)
