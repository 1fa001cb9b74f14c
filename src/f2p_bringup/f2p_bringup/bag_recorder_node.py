"""``bag_recorder`` lifecycle node: the stack's topics into a rosbag2 bag (MCAP) that ``ros2 bag``
reads on a robot and ``f2p-learn-bag`` learns from offline.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
sub ``topics`` (param)     any type, serialized             each listed topic once it has a
                                                            publisher (QoS matched to it: a
                                                            latched topic is recorded latched,
                                                            its publishers' QoS in the bag for
                                                            ``ros2 bag play``)
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  the bag, messages and MB written,
                                                            topics recorded / still absent
=========================  ===============================  ====================================

Configure opens ``<bag_dir>/<bag_name>`` (never overwrites; '' = ``f2p_<UTC time>`` under
``$ROS_HOME/f2p/bags``); while active, every ``discovery_period_s`` the node looks for the listed
topics among the graph's (names resolved with the node's remaps, so the stack's ``camera/points``
remap applies here too) and subscribes to each with its publishers' type, receiving messages
serialized and writing them as they are (:class:`f2p_ros.bag.BagWriter`). Topics in
``throttled_topics`` (the camera cloud by default: 640x480 clouds are ~7 MB) are written at
most ``throttle_hz`` times per second. Everything written is flushed to disk every
``flush_period_s``, so a recorder killed loses at most that much; deactivating flushes,
cleanup / shutdown finish the bag (summary, ``metadata.yaml``). A killed recorder's bag has no
``metadata.yaml``: ``f2p-learn-bag`` still reads it (and ``ros2 bag reindex`` repairs it).
Log times are the node's clock: the system clock, or /clock with ``use_sim_time`` (as ``ros2 bag
record --use-sim-time``), the time base the graph's header stamps are in.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from f2p_common.resources import f2p_home
from f2p_ros import parameters as P
from f2p_ros.bag import BagError, BagWriter, message_class
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node

#: What the stack publishes that a failure's story needs (issue 30): camera cloud, segments,
#: relations, plans and progress, failure events, markers, models, the learner, diagnostics.
DEFAULT_TOPICS = ["camera/points", "segmented_scene", "relation_state", "plan", "task_progress", "failure_events",
                  "markers", "model_info", "model_updates", "learner/progress", "gripper/pose", "camera/pose",
                  "/diagnostics"]

PARAMS = [
    P.Param("bag_dir", "", "folder of the bags ('' = $ROS_HOME/f2p/bags)"),
    P.Param("bag_name", "", "the bag's folder name ('' = f2p_<UTC time>); an existing bag is never overwritten"),
    P.Param("topics", DEFAULT_TOPICS, "topics recorded (relative names take the node's remaps)",
            lambda v: None if v and all(v) else "must list at least one topic"),
    P.Param("throttled_topics", ["camera/points"], "topics written at most throttle_hz ([''] = none)"),
    P.Param("throttle_hz", 1.0, "rate limit of throttled_topics (Hz)", P.positive, live=True),
    P.Param("flush_period_s", 1.0, "written data reaches the disk (fsync) this often (s)",
            P.positive),
    P.Param("discovery_period_s", 1.0, "how often absent topics are looked for (s)",
            P.positive),
]


def default_bag_dir() -> Path:
    return f2p_home() / "bags"


def _matching_qos(publishers) -> QoSProfile:
    """The subscription QoS that matches every publisher: reliable and transient-local (latched)
    only when all of them are, so no publisher is left incompatible (as ``ros2 bag record`` does)."""
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class BagRecorderNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("bag_recorder", **kwargs)
        P.declare(self, PARAMS)
        self.bag: BagWriter | None = None
        self._subs: dict[str, object] = {}
        self._last_write: dict[str, float] = {}
        self._diag = None
        self._lock = threading.Lock()
        # on_activate's discovery runs on the lifecycle service's thread while the discovery
        # timer may already fire on another: without this, a topic can be subscribed twice
        # and every message of it recorded twice.
        self._discovering = threading.Lock()
        self.last_error = ""
        self._group = MutuallyExclusiveCallbackGroup()

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = self.v = P.load(self, PARAMS)
            name = v["bag_name"] or "f2p_" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self.bag = BagWriter(Path(v["bag_dir"] or default_bag_dir()).expanduser() / name)
        except (ValueError, OSError, BagError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._wanted = {self.resolve_topic_name(t): t for t in v["topics"]}
        self._throttled = {self.resolve_topic_name(t) for t in v["throttled_topics"] if t}
        self._diag = self.create_diagnostics_publisher()
        self.get_logger().info(f"configured: recording {len(self._wanted)} topics into {self.bag.path}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for period, callback in ((self.v["discovery_period_s"], self._discover), (self.v["flush_period_s"], self._flush),
                                 (1.0, self._publish_diagnostics)):
            self.until_deactivate(self.create_timer(period, callback, callback_group=self._group))
        self._discover()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)            # the timers first: no discovery after this
        self._unsubscribe()
        self._flush()
        return result

    def _unsubscribe(self) -> None:
        """Drop the subscriptions discovery made (one per recorded topic, made while active)."""
        with self._discovering, self._lock:
            subs, self._subs = self._subs, {}
        for s in subs.values():
            self.destroy_subscription(s)

    def _finish(self) -> None:
        self._unsubscribe()
        if self.bag is not None:
            try:
                self.bag.close()
                self.get_logger().info(f"bag {self.bag.path}: {self.bag.messages} messages, "
                                       f"{self.bag.bytes / 1e6:.1f} MB")
            except OSError as exc:
                self.get_logger().error(f"cannot finish the bag {self.bag.path}: {exc}")
            self.bag = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._finish()
        self._diag = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_shutdown(state)
        self._finish()
        return result

    def destroy_node(self):
        self._finish()
        super().destroy_node()

    # --- recording -------------------------------------------------------------------
    def _discover(self) -> None:
        """Subscribe to each wanted topic that has appeared, with its publishers' type and QoS."""
        with self._discovering:
            if self.bag is not None:
                self._discover_new()

    def _discover_new(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic not in self._wanted or topic in self._subs:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            try:
                msgtype = types[0]
                self.bag.add_topic(topic, msgtype, [p.qos_profile for p in publishers])
                cls = message_class(msgtype)
            except (KeyError, ImportError, AttributeError, ValueError) as exc:
                self.last_error = f"cannot record {topic}: {exc}"
                self.get_logger().warning(self.last_error)
                continue
            sub = self.create_subscription(cls, topic, lambda data, t=topic: self._on_message(t, data),
                                           _matching_qos(publishers), callback_group=self._group, raw=True,
                                           event_callbacks=NO_EVENT_HANDLERS["sub"])
            with self._lock:
                self._subs[topic] = sub
            self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, data: bytes) -> None:
        if topic in self._throttled:
            now = time.monotonic_ns()
            if now - self._last_write.get(topic, 0) < 1e9 / self.v["throttle_hz"]:
                return
            self._last_write[topic] = now
        try:
            # log time: the node's clock, as `ros2 bag record --use-sim-time` (the graph's time base)
            self.bag.write(topic, self.get_clock().now().nanoseconds, data)
        except (OSError, BagError, AttributeError) as exc:
            self.last_error = f"cannot write {topic}: {exc}"

    def _flush(self) -> None:
        if self.bag is None:
            return
        try:
            self.bag.flush()
        except OSError as exc:
            self.last_error = f"cannot flush the bag {self.bag.path}: {exc.strerror or exc}"
            self.get_logger().error(self.last_error)

    def _publish_diagnostics(self) -> None:
        if self._diag is None or self.bag is None:
            return
        absent = sorted(set(self._wanted) - set(self._subs))
        level = ERROR if self.last_error else (OK if self._subs else WARN)
        message = self.last_error or (f"recording {len(self._subs)} topics" if self._subs else "no topic published yet")
        self._diag.publish(diagnostics(self, "bag", level, message, bag=self.bag.path, messages=self.bag.messages,
                                       megabytes=round(self.bag.bytes / 1e6, 2), recorded=len(self._subs),
                                       absent=", ".join(absent)))


def main(args=None) -> None:
    run_node(lambda: BagRecorderNode(), args)


if __name__ == "__main__":
    main()
