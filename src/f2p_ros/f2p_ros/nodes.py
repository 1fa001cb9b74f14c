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

import os
import sys
import threading
import traceback
from typing import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.client import Client
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer

#: Endpoint options without QoS event handlers (module docstring).
NO_EVENT_HANDLERS = {"pub": PublisherEventCallbacks(use_default_callbacks=False),
                     "sub": SubscriptionEventCallbacks(use_default_callbacks=False)}

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


class ManagedNode(LifecycleNode):
    """The lifecycle node every f2p node is: rclpy's LifecycleNode that says whether it is active
    (:attr:`is_active`, from the lifecycle state itself) and owns what each lifecycle phase made.

    An endpoint made in ``on_configure`` and handed to :meth:`until_cleanup` lives until cleanup
    (or shutdown); one made in ``on_activate`` and handed to :meth:`until_deactivate`, and every
    thread started with :meth:`start_worker`, until deactivate (or shutdown); one made with the
    node and handed to :meth:`until_destroyed`, until ``destroy_node``. Workers are stopped and
    joined first (they may be calling services), then the endpoints destroyed, whatever their
    kind (publishers, lifecycle publishers, subscriptions, timers, clients, services, action
    servers and clients). A node that overrides ``on_deactivate`` / ``on_cleanup`` /
    ``on_shutdown`` calls ``super()``, which returns SUCCESS.

    **Nothing fails silently** (issue 43). A worker whose target raises is restarted (after 1 s,
    doubling up to 30 s) while its phase lasts, and each death is an ERROR status on
    ``/diagnostics`` (once configured) and in the log with its traceback. Every node publishes a
    :class:`~f2p_interfaces.msg.Heartbeat` on ``heartbeat`` every :attr:`HEARTBEAT_PERIOD_S`
    from its own executor, in every state: its lifecycle state, restarts and the workers down,
    so a runner or lifecycle manager detects a dead or hung node and says which.
    :meth:`create_guarded_service` answers an exception in a service callback as an error reply;
    :meth:`create_guarded_action_server` does the same for an action's goal and execute callbacks
    (rclpy's own answers an execute callback's exception with an empty result: ``error_code`` 0
    and no message).

    ``destroy_node`` also destroys the state machine. rclpy's does not, and the state machine
    holds the node handle and its five lifecycle services, so a destroyed lifecycle node stays in
    the graph until garbage collection: measured, another process still saw
    ``/<node>/change_state`` and its request went to a node no longer spinning (same family as
    ros2/rclpy#1710)."""

    #: Seconds between two heartbeats.
    HEARTBEAT_PERIOD_S = 0.5
    #: A dead worker's first restart delay and the longest (s): it doubles in between.
    WORKER_RESTART_S = (1.0, 30.0)

    def __init__(self, node_name: str, **kwargs):
        self._owned: dict[str, list] = {"node": [], "configured": [], "active": []}
        self._workers: list[tuple[threading.Thread, Callable[[], None] | None, float, threading.Event]] = []
        self._diag_pub = None
        self.worker_restarts, self.workers_down = 0, set()
        self._unreported: list = []
        super().__init__(node_name, **kwargs)
        from f2p_interfaces.msg import Heartbeat
        self._heartbeat = Heartbeat(node=self.get_fully_qualified_name())
        self._heartbeat_pub = self.create_publisher(Heartbeat, "heartbeat", 10)
        self.heartbeat_timer = self.create_timer(self.HEARTBEAT_PERIOD_S, self._beat,
                                                 callback_group=MutuallyExclusiveCallbackGroup())

    def _beat(self) -> None:
        hb = self._heartbeat
        hb.header.stamp = self.get_clock().now().to_msg()
        hb.lifecycle_state = int(self._state_machine.current_state[0])
        hb.worker_restarts, hb.workers_down = self.worker_restarts, sorted(self.workers_down)
        self._heartbeat_pub.publish(hb)
        hb.sequence += 1

    @property
    def is_active(self) -> bool:
        """The node is in the lifecycle's active state (not while activating or deactivating): the
        one flag service and action callbacks check before they serve."""
        return self._state_machine.current_state[1] == "active"

    def until_destroyed(self, endpoint):
        """``endpoint``, destroyed with the node; returns it."""
        self._owned["node"].append(endpoint)
        return endpoint

    def until_cleanup(self, endpoint):
        """``endpoint``, destroyed at cleanup (or shutdown); returns it."""
        self._owned["configured"].append(endpoint)
        return endpoint

    def until_deactivate(self, endpoint):
        """``endpoint``, destroyed at deactivate (or shutdown); returns it."""
        self._owned["active"].append(endpoint)
        return endpoint

    def create_guarded_service(self, srv_type, name: str, handler: Callable, **kwargs):
        """``create_service`` whose handler never takes the node down: an exception it raises is
        logged with its traceback and answered as an error reply (:func:`internal_error_reply`),
        and the node goes on serving."""
        def guarded(request, response):
            try:
                return handler(request, response)
            except Exception as exc:          # noqa: BLE001  any bug or bad input: an answer, never a crash
                self.get_logger().error(f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                return internal_error_reply(srv_type.Response(), f"internal error in {self.get_name()}/{name}: "
                                                                 f"{type(exc).__name__}: {exc}")
        return self.create_service(srv_type, name, guarded, **kwargs)

    def create_guarded_action_server(self, action_type, name: str, execute: Callable, goal_callback: Callable,
                                     **kwargs):
        """An ``ActionServer`` owned by the node (:meth:`until_destroyed`) whose callbacks never take
        it down: a ``goal_callback`` that raises rejects the goal; an ``execute`` that raises aborts
        it with a result made by :func:`internal_error_reply` (``ERROR_INTERNAL``, the message);
        both are logged with their traceback. Cancel requests are accepted."""
        from rclpy.action import CancelResponse, GoalResponse

        from f2p_ros.actions import ActionServer

        def guarded_goal(goal):
            try:
                return goal_callback(goal)
            except Exception as exc:          # noqa: BLE001
                self.get_logger().error(f"{name} goal: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                return GoalResponse.REJECT

        def guarded_execute(goal_handle):
            try:
                return execute(goal_handle)
            except Exception as exc:          # noqa: BLE001  any bug or bad input: a result, never a crash
                self.get_logger().error(f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                if goal_handle.is_active:
                    goal_handle.abort()
                return internal_error_reply(action_type.Result(), f"internal error in {self.get_name()}/{name}: "
                                                                  f"{type(exc).__name__}: {exc}")
        return self.until_destroyed(ActionServer(self, action_type, name, guarded_execute, goal_callback=guarded_goal,
                                                 cancel_callback=lambda _goal: CancelResponse.ACCEPT, **kwargs))

    def create_diagnostics_publisher(self):
        """The node's ``/diagnostics`` lifecycle publisher (made at configure, destroyed at cleanup)."""
        self._diag_pub = self.until_cleanup(self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10,
                                                                            event_callbacks=NO_EVENT_HANDLERS["pub"]))
        return self._diag_pub

    def start_worker(self, target: Callable[[], None], name: str, stop: Callable[[], None] | None = None,
                     join_timeout: float = 30.0) -> threading.Thread:
        """Run ``target`` in a daemon thread until deactivate (or shutdown), which calls ``stop()``
        (it must make ``target`` return) and joins it for at most ``join_timeout`` s. A ``target``
        that raises is restarted (class docstring); one that returns has ended."""
        stopping = threading.Event()
        thread = threading.Thread(target=self._supervise, args=(target, name, stopping),
                                  name=f"{self.get_name()}-{name}", daemon=True)
        self._workers.append((thread, stop, join_timeout, stopping))
        thread.start()
        return thread

    def _supervise(self, target: Callable[[], None], name: str, stopping: threading.Event) -> None:
        delay = self.WORKER_RESTART_S[0]
        while not stopping.is_set():
            try:
                target()
                return
            except Exception as exc:          # noqa: BLE001  a worker's bug must not silently end its work
                self.worker_restarts += 1
                self.workers_down.add(name)
                why = f"worker {name} died ({type(exc).__name__}: {exc}); restart {self.worker_restarts} in {delay:g} s"
                self.get_logger().error(f"{why}\n{traceback.format_exc()}")
                report = diagnostics(self, f"worker {name}", ERROR, why, restarts=self.worker_restarts)
                pub = self._diag_pub
                if pub is not None and self.is_active:
                    pub.publish(report)
                else:                          # died while activating: said once the node is active
                    self._unreported.append(report)
                if stopping.wait(delay):
                    return
                self.workers_down.discard(name)
                delay = min(self.WORKER_RESTART_S[1], 2 * delay)

    def on_activate(self, state):
        result = super().on_activate(state)             # the lifecycle publishers publish from here on
        reports, self._unreported = self._unreported, []
        if self._diag_pub is not None:
            for report in reports:
                self._diag_pub.publish(report)
        return result

    def on_deactivate(self, state):
        self._release("active")
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._release("configured")
        self._diag_pub = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._release("active")
        self._release("configured")
        self._diag_pub = None
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        self._stop_workers()
        # rclpy's destroy_node destroys the node's publishers, subscriptions, timers, clients and
        # services; action servers and clients are destroyed here
        owned = [e for phase in self._owned.values() for e in phase]
        self._owned = {phase: [] for phase in self._owned}
        for endpoint in reversed(owned):
            if not isinstance(endpoint, (Publisher, Subscription, Timer, Client, Service)):
                endpoint.destroy()
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def _stop_workers(self) -> None:
        workers, self._workers = self._workers, []
        for _thread, stop, _timeout, stopping in workers:
            stopping.set()
            if stop is not None:
                stop()
        self.workers_down.clear()
        for thread, _stop, timeout, _stopping in workers:
            if thread is not threading.current_thread():
                thread.join(timeout=timeout)
                if thread.is_alive():
                    self.get_logger().warning(f"worker {thread.name} did not stop within {timeout:g} s")

    def _release(self, phase: str) -> None:
        if phase == "active":
            self._stop_workers()
        owned, self._owned[phase] = self._owned[phase], []
        for endpoint in reversed(owned):
            self._destroy_endpoint(endpoint)

    def _destroy_endpoint(self, endpoint) -> None:
        if isinstance(endpoint, LifecyclePublisher):
            self.destroy_lifecycle_publisher(endpoint)
        elif isinstance(endpoint, Publisher):
            self.destroy_publisher(endpoint)
        elif isinstance(endpoint, Subscription):
            self.destroy_subscription(endpoint)
        elif isinstance(endpoint, Timer):
            self.destroy_timer(endpoint)
        elif isinstance(endpoint, Client):
            self.destroy_client(endpoint)
        elif isinstance(endpoint, Service):
            self.destroy_service(endpoint)
        else:                                   # action servers and clients, message filters
            endpoint.destroy()


def internal_error_reply(response, message: str):
    """``response`` as a refusal: ``success`` / ``accepted`` false, ``error_code`` the type's
    ``ERROR_INTERNAL`` when it has one, ``retry`` true (the request may be fine), ``message``."""
    for flag in ("success", "accepted"):
        if hasattr(response, flag):
            setattr(response, flag, False)
    if hasattr(response, "error_code") and hasattr(response, "ERROR_INTERNAL"):
        response.error_code = response.ERROR_INTERNAL
    if hasattr(response, "retry"):
        response.retry = True
    if hasattr(response, "message"):
        response.message = message[:2000]
    return response


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


#: Seconds a node has to end after Ctrl-C or SIGTERM before its process exits regardless.
SHUTDOWN_GRACE_S = 10.0


def _exit_after(grace_s: float) -> threading.Timer:
    """A daemon timer that ends the process (exit 1) when a clean shutdown hangs: a callback
    that never returns would otherwise keep ``executor.shutdown`` waiting for ever, and a node
    whose runner was killed (SIGTERM through PR_SET_PDEATHSIG) has nobody left to kill it."""
    def _exit() -> None:
        print(f"[f2p] shutdown did not finish within {grace_s:g} s: exiting", file=sys.stderr, flush=True)
        os._exit(1)
    timer = threading.Timer(grace_s, _exit)
    timer.daemon = True
    timer.start()
    return timer


def run_node(make_node: Callable[[], object], args=None, threads: int = 4) -> None:
    """``main`` of an f2p node: init, spin ``make_node()`` on a MultiThreadedExecutor (long work
    runs in its own callback group), shut down cleanly on Ctrl-C, SIGTERM or an external
    shutdown, within :data:`SHUTDOWN_GRACE_S` (then the process exits regardless)."""
    rclpy.init(args=args)
    node = make_node()
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        watchdog = _exit_after(SHUTDOWN_GRACE_S)
        executor.shutdown(timeout_sec=SHUTDOWN_GRACE_S)
        node.destroy_node()
        rclpy.try_shutdown()
        watchdog.cancel()
