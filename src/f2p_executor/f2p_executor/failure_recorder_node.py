"""``failure_recorder`` lifecycle node: every failure event the robot records reaches the learner,
none is lost and none is shipped again once the learner acknowledged it.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
srv ``record_failure``     f2p_interfaces/SubmitFailure     store an event durably, then answer
                                                            ``accepted`` (false: why, and nothing
                                                            was stored); the task executor's
                                                            and any other producer's
client ``submit_failure``  f2p_interfaces/SubmitFailure     the learner (remap it to the
                                                            learner's service)
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  spool depth, oldest event age,
                                                            shipped, last error (every second)
=========================  ===============================  ====================================

The spool folder (``spool_dir``, '' = ``$ROS_HOME/f2p/failure_events``,
``f2p_failure.queue.default_spool_dir``) is the queue (``f2p_failure.queue.EventQueue``) and this
node is its one writer: ``record_failure`` stores an event there durably (fsync + rename) before
it answers, and a shipping thread sends the pending ones, oldest first, with ``SubmitFailure``. An event moves to ``shipped/`` only after the learner
accepted it; while the learner is absent or silent the node retries with exponential back-off
(``retry_initial_s`` doubling up to ``retry_max_s``), so the spool grows and drains when the
learner returns; so does an event the learner cannot take yet (``retry``: it is not active, its
disk is full). An event the learner refuses (malformed) moves to ``refused/`` with the
learner's reason on ``/diagnostics``, never silently dropped; an event file that no longer
loads (corrupt disk) moves to ``unreadable/``. Killed at any point, the node restarts from the
folder; an event whose acknowledgement was lost in the crash is sent once more and the learner
acknowledges it again without queueing it twice (its queue is idempotent by event id). A spool
that cannot be written (full disk, read-only) refuses ``record_failure`` with the error and
reports it: nothing is acknowledged that was not stored.

Retention: ``shipped/`` holds events the learner has; the oldest are deleted beyond
``keep_shipped`` events, ``keep_shipped_mb`` MiB or ``keep_shipped_days`` (at configure and after
each shipping pass), so shipped events never fill the robot's disk. Pending, refused and
unreadable events are never deleted.

With ``producer_keys``, ``record_failure`` takes only events signed by one of them (the task
executor signs with its ``robot_key``): anyone else on the ROS domain is refused
(``ERROR_NOT_AUTHENTIC``). The signature is kept beside the event and shipped with it, so the
learner checks the robot's own signature. ``/diagnostics`` reports the spool's free space: WARN
below ``min_free_mb``, ERROR when an event could not be stored.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from f2p_common.keys import SignatureError
from f2p_failure.events import FailureEventError, load_event, verify_event
from f2p_failure.queue import EventIdConflict, EventQueue, default_spool_dir
from f2p_interfaces.srv import SubmitFailure
from f2p_ros import parameters as P
from f2p_ros.conversions import ConversionError, failure_event_from_msg, failure_event_to_msg
from f2p_ros.nodes import ERROR, ManagedNode, OK, WARN, diagnostics, run_node, wait_for

#: Where spooled events move: acknowledged by the learner, refused by it, no longer loadable.
SPOOL_STATES = ("shipped", "refused", "unreadable")

PARAMS = [
    P.Param("max_event_segments", 64, "segments an event may have (more: refused as malformed)", P.at_least(1)),
    P.Param("max_event_mb", 64.0, "MiB of clouds an event may carry (more: refused before it is converted)",
            P.positive),
    P.Param("spool_dir", "", "the spool folder ('' = $ROS_HOME/f2p/failure_events)"),
    P.Param("producer_keys", [""], "PEM public keys whose signature an event must carry (the robot's own, the "
                                   "task executor's robot_key's .pub; [''] = unsigned events are taken too)"),
    P.Param("retry_initial_s", 1.0, "first wait after the learner did not answer (s)",
            P.positive, live=True),
    P.Param("retry_max_s", 60.0, "longest wait between tries (s)", P.positive, live=True),
    P.Param("keep_shipped", 1000, "shipped events kept at most (the oldest deleted first)", P.positive_or_zero, live=True),
    P.Param("keep_shipped_mb", 1024.0, "MiB of shipped events kept at most", P.positive_or_zero, live=True),
    P.Param("keep_shipped_days", 30.0, "shipped events older than this are deleted (days)", P.positive_or_zero,
            live=True),
    P.Param("min_free_mb", 100.0, "warn on /diagnostics when the spool's disk has less free space (MiB)",
            P.positive_or_zero, live=True),
    P.Param("submit_timeout_s", 30.0, "longest wait for the learner's answer to one event (s)",
            P.positive, live=True),
]


class FailureRecorderNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("failure_recorder", **kwargs)
        P.declare(self, PARAMS)
        self.queue: EventQueue | None = None
        self._diag = None
        self._stop, self._wake = threading.Event(), threading.Event()
        self.shipped = self.stored = 0
        self.last_error = ""
        self._calls = ReentrantCallbackGroup()
        self._client = self.create_client(SubmitFailure, "submit_failure", callback_group=self._calls)
        self.create_guarded_service(SubmitFailure, "record_failure", self._on_record, callback_group=self._calls)

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.v = P.load(self, PARAMS)
            self.queue = EventQueue(Path(self.v["spool_dir"] or default_spool_dir()).expanduser(), SPOOL_STATES)
        except (ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._diag = self.create_diagnostics_publisher()
        self._prune()
        self.get_logger().info(f"configured: spool {self.queue.folder}, {self.queue.stats().pending} pending")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.until_deactivate(self.create_timer(1.0, self._publish_diagnostics))
        self._stop.clear()
        self.start_worker(self._ship_loop, "ship", stop=self._halt, join_timeout=self.v["submit_timeout_s"] + 5.0)
        return super().on_activate(state)

    def _halt(self) -> None:
        self._stop.set()
        self._wake.set()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._diag, self.queue = None, None
        return super().on_cleanup(state)

    # --- storing ---------------------------------------------------------------------
    def _on_record(self, req: SubmitFailure.Request, resp: SubmitFailure.Response) -> SubmitFailure.Response:
        """Store the event durably in the spool, then answer; or say why not (``retry``: a refusal
        that may pass, SubmitFailure.srv)."""
        resp.event_id = req.event.event_id
        if not self.is_active:
            resp.retry, resp.error_code = True, SubmitFailure.Response.ERROR_NOT_ACTIVE
            resp.message = "the failure recorder is not active"
            return resp
        try:
            event = failure_event_from_msg(req.event, self.v["max_event_segments"],
                                           int(self.v["max_event_mb"] * 2 ** 20))
            self._check_producer(event, req.signature)
            path, new = self.queue.put(event, req.signature)
        except SignatureError as exc:
            resp.error_code, resp.message = SubmitFailure.Response.ERROR_NOT_AUTHENTIC, str(exc)
            return resp
        except EventIdConflict as exc:
            resp.error_code, resp.message = SubmitFailure.Response.ERROR_CONFLICT, str(exc)
            return resp
        except (ConversionError, FailureEventError, ValueError) as exc:
            resp.error_code, resp.message = SubmitFailure.Response.ERROR_MALFORMED, f"malformed failure event: {exc}"
            return resp
        except OSError as exc:                     # full disk, read-only spool: say so, store nothing
            self.last_error = f"cannot write the spool {self.queue.folder}: {exc.strerror or exc}"
            self.get_logger().error(self.last_error)
            resp.retry, resp.error_code, resp.message = True, SubmitFailure.Response.ERROR_STORAGE, self.last_error
            return resp
        if new:
            self.stored += 1
            self._wake.set()
        resp.accepted, resp.message, resp.stored_uri = True, "stored" if new else "already recorded", str(path)
        return resp

    def _check_producer(self, event, signature: str) -> None:
        """SignatureError unless ``event`` is signed by one of ``producer_keys`` (when there are any)."""
        keys = [k for k in self.v["producer_keys"] if k]
        if not keys:
            return
        errors = []
        for key in keys:
            try:
                return verify_event(event, signature, key)
            except SignatureError as exc:
                errors.append(str(exc))
        raise SignatureError(f"refused: {errors[0]}")

    # --- shipping --------------------------------------------------------------------
    def _ship_loop(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            self._wake.wait(delay if delay else 1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            shipped_all = True
            for path in self.queue.pending():
                if self._stop.is_set():
                    return
                if not self._ship(path):
                    shipped_all = False
                    break
            self._prune()
            delay = 0.0 if shipped_all else min(self.v["retry_max_s"], max(self.v["retry_initial_s"], 2 * delay))

    def _ship(self, path: Path) -> bool:
        """Send one pending event; False when the learner did not answer (retry later)."""
        event_id = path.name[:-len(".f2pevent")]
        try:
            msg = failure_event_to_msg(load_event(path))
        except FailureEventError as exc:
            if not path.exists():                 # gone meanwhile: nothing to ship
                return True
            self.last_error = f"event {event_id} no longer loads ({exc}): moved to unreadable/"
            self.get_logger().error(self.last_error)
            self.queue.move(event_id, "unreadable")
            return True
        if not self._client.wait_for_service(timeout_sec=0.5):
            self.last_error = f"the learner ({self._client.srv_name}) is not available"
            return False
        try:
            resp = wait_for(self._client.call_async(SubmitFailure.Request(event=msg, signature=self.queue.signature(
                event_id))), self.v["submit_timeout_s"], self._stop.is_set)
        except (TimeoutError, InterruptedError) as exc:
            self.last_error = f"the learner did not acknowledge event {event_id}: {exc}"
            return False
        if resp.accepted:
            self.queue.move(event_id, "shipped")
            self.shipped += 1
            self.get_logger().info(f"event {event_id} shipped: {resp.message} ({resp.stored_uri})")
        elif resp.retry:                          # not active, its disk full: keep it, try again later
            self.last_error = f"the learner could not take event {event_id} now: {resp.message}"
            return False
        else:
            self.last_error = f"the learner refused event {event_id}: {resp.message} (moved to refused/)"
            self.get_logger().error(self.last_error)
            self.queue.move(event_id, "refused")
        return True

    def _prune(self) -> None:
        """Apply the shipped events' retention (module docstring)."""
        removed = self.queue.prune("shipped", int(self.v["keep_shipped"]), int(self.v["keep_shipped_mb"] * 2 ** 20),
                                   self.v["keep_shipped_days"] * 86400.0)
        if removed:
            self.get_logger().info(f"retention: deleted {len(removed)} shipped event(s), the oldest "
                                   f"{removed[0].name}")

    def _publish_diagnostics(self) -> None:
        stats = self.queue.stats()
        free_mb = shutil.disk_usage(self.queue.folder).free / 2 ** 20
        level = ERROR if self.last_error.startswith("cannot write") else WARN if stats.pending else OK
        message = ((self.last_error or f"{stats.pending} event(s) to ship") if stats.pending or level == ERROR
                   else "every event shipped")
        if free_mb < self.v["min_free_mb"]:
            level = max(level, WARN)
            message = f"{free_mb:.0f} MiB free for the spool (min_free_mb {self.v['min_free_mb']:g}); " + message
        self._diag.publish(diagnostics(self, "spool", level, message, spool=str(self.queue.folder),
                                       free_mb=f"{free_mb:.0f}",
                                       pending=stats.pending, oldest_age_s=f"{stats.oldest_age_s:.1f}",
                                       stored=self.stored, shipped_now=self.shipped,
                                       **{f"in_{k}": v for k, v in stats.moved.items()}, last_error=self.last_error))


def main(args=None) -> None:
    run_node(FailureRecorderNode, args)


if __name__ == "__main__":
    main()
