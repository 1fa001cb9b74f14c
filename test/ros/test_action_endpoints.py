"""f2p_ros.actions: action endpoints that a spinning executor can meet the moment they join
their node's wait set (the CI flake of a RunTask client made beside a spinning harness).

The executor's side is played deterministically: the node's ``add_waitable`` hands the new
endpoint at once to what a spinning executor does with it (count its entities, and for a
server, log a goal request), as a thread that wakes in between would."""
from __future__ import annotations

import pytest
import rclpy.action
import rclpy.node

from f2p_bringup.distro import current_distro
from f2p_interfaces.action import RunTask
from f2p_ros.actions import ActionClient, ActionServer
from support.ros import WAIT_S, wait_future


def _executor_meets_it_on_joining(node):
    """``node.add_waitable`` that does, at once, what a spinning executor's thread does first."""
    original = node.add_waitable

    def add_waitable(waitable):
        original(waitable)
        waitable.get_num_entities()                       # the executor building its wait set
        if hasattr(waitable, "register_goal_callback"):    # a server: its goal path logs
            waitable._logger.debug("goal request")
    node.add_waitable = add_waitable


def test_rclpys_own_client_still_breaks_an_executor_that_meets_it_early_on_kilted(ros):
    """Why the wrapper exists: Kilted's rclpy (9.1) joins the wait set before it makes the lock
    that counting its entities takes; if this starts passing there, rclpy fixed it and
    f2p_ros.actions can go. Jazzy's (7.1) has no such lock: its client can be met at once."""
    node = rclpy.node.Node("early_rclpy_client", context=ros.context)
    _executor_meets_it_on_joining(node)
    if current_distro() == "jazzy":
        rclpy.action.ActionClient(node, RunTask, "/f2p_test/early").destroy()
    else:
        with pytest.raises(AttributeError, match="_lock"):
            rclpy.action.ActionClient(node, RunTask, "/f2p_test/early")
    node.destroy_node()


def test_f2p_endpoints_can_be_met_at_once_and_still_work(ros):
    server_node = ros.add(rclpy.node.Node("early_server", context=ros.context))
    client_node = ros.add(rclpy.node.Node("early_client", context=ros.context))
    _executor_meets_it_on_joining(server_node)
    _executor_meets_it_on_joining(client_node)

    def execute(goal_handle):
        goal_handle.succeed()
        return RunTask.Result(success=True, message=goal_handle.request.task_description)
    ActionServer(server_node, RunTask, "/f2p_test/early", execute)
    client = ActionClient(client_node, RunTask, "/f2p_test/early")
    assert client.wait_for_server(timeout_sec=WAIT_S)
    handle = wait_future(client.send_goal_async(RunTask.Goal(task_description="met early")))
    assert handle.accepted
    result = wait_future(handle.get_result_async()).result
    assert result.success and result.message == "met early"
