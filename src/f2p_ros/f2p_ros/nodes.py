"""What every f2p node shares besides conversions and parameters: endpoint options, the
``/diagnostics`` status it publishes, and its ``main``.

``NO_EVENT_HANDLERS``: endpoints created and destroyed while a MultiThreadedExecutor spins
carry no QoS event handlers. rclpy 9.1's executor, gathering a wait set while another thread
destroys an endpoint, skips the endpoint's destroyed event handler on entering it but then
adds it to the wait set and raises InvalidHandle, which ends the spin (measured: 2 of 15 runs
of the cloud_filter lifecycle test hung at deactivate; cf. ros2/rclpy#1206). Endpoints without
handlers go through the executor's guarded path; the peer still logs incompatible QoS.
"""
from __future__ import annotations

import threading
from typing import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode

#: Endpoint options without QoS event handlers (module docstring).
NO_EVENT_HANDLERS = {"pub": PublisherEventCallbacks(use_default_callbacks=False),
                     "sub": SubscriptionEventCallbacks(use_default_callbacks=False)}

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


class ManagedNode(LifecycleNode):
    """The lifecycle node every f2p node is: rclpy's LifecycleNode that says whether it is active
    (:attr:`is_active`, from the lifecycle state itself), and whose ``destroy_node`` also
    destroys its state machine. rclpy's does not, and the state machine holds the node handle
    and its five lifecycle services, so a destroyed lifecycle node stays in the graph until
    garbage collection: measured, another process still saw ``/<node>/change_state`` and its
    request went to a node no longer spinning (same family as ros2/rclpy#1710)."""

    @property
    def is_active(self) -> bool:
        """The node is in the lifecycle's active state (not while activating or deactivating): the
        one flag service and action callbacks check before they serve."""
        return self._state_machine.current_state[1] == "active"

    def destroy_node(self):
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()


def diagnostics(node, name: str, level: int, message: str, **values) -> DiagnosticArray:
    """One ``/diagnostics`` array with the status ``"<node>: <name>"`` and its key/values."""
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [DiagnosticStatus(level=level, name=f"{node.get_name()}: {name}", message=message, hardware_id="",
                                   values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])]
    return arr


def wait_for(future, timeout: float, stop: Callable[[], bool] | None = None, poll: float = 0.05):
    """Block a callback thread until an rclpy ``future`` is done (another executor thread
    completes it: the node must spin on a MultiThreadedExecutor) and return its result.
    TimeoutError after ``timeout`` s; InterruptedError as soon as ``stop()`` is true."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    waited = 0.0
    while not done.wait(poll):
        waited += poll
        if stop is not None and stop():
            raise InterruptedError("stopped while waiting")
        if waited >= timeout:
            raise TimeoutError(f"no answer within {timeout:g} s")
    return future.result()


def run_node(make_node: Callable[[], object], args=None, threads: int = 4) -> None:
    """``main`` of an f2p node: init, spin ``make_node()`` on a MultiThreadedExecutor (long work
    runs in its own callback group), shut down cleanly on Ctrl-C or an external shutdown."""
    rclpy.init(args=args)
    node = make_node()
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
