"""``perception`` lifecycle node: the camera's cloud to a SegmentedScene in the robot's frame.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
sub ``camera/points``      sensor_msgs/PointCloud2          the camera (``camera_reliability``,
                                                            keep last ``camera_queue``)
pub ``segmented_scene``    f2p_interfaces/SegmentedScene    per-object clouds, labels, scores,
                                                            boxes in ``base_frame``; transient
                                                            local: a late subscriber gets the
                                                            latest scene
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  per cloud: OK with the object count,
                                                            or ERROR with why it was refused;
                                                            WARN when the camera goes silent
=========================  ===============================  ====================================

Segmentation backends sit behind ``f2p_perception.segmentation.Segmenter`` (parameter
``backend``). A cloud not already in ``base_frame`` is moved there by ``camera_pose`` (the
camera's pose in the base frame, x y z qx qy qz qw; on a robot with tf, leave it empty and
publish clouds in the base frame). A bad cloud (malformed layout, no labels for the backend,
a frame it cannot place) is reported and dropped; the node keeps running. Lifecycle:
configure builds the backend and the publishers, activate subscribes and starts the staleness
watch, deactivate and cleanup undo them.

Clouds are received and segmented on different threads: the subscription only keeps the newest
cloud, a worker segments the newest one whenever it is free, at most ``max_rate_hz`` times a
second, and keeps at most ``max_object_points`` points per object. A 640x480 camera at 30 Hz
thus never backs up DDS while segmentation runs at its own pace on the latest view; clouds
superseded before segmentation are counted on ``/diagnostics`` as ``skipped``. The camera
subscription is reliable with a queue of 10: large clouds are fragmented, and best effort
loses every fragmented cloud, a queue of 1 most of them (``benchmarks/cloud_delivery.py``).
A driver that only offers best effort needs ``camera_reliability: best_effort`` (a reliable
subscription does not match it) and, for full-size clouds, decimation at the driver.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from f2p_common.interfaces import PointCloudError, SegmentedScene
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_perception.segmentation import SEGMENTERS, SensorFrame, limit_points, make_segmenter, transform_cloud
from f2p_perception.tracking import SegmentTracker
from f2p_ros import parameters as P
from f2p_ros.conversions import camera_cloud_from_msg, scene_to_msg
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node

PARAMS = [
    P.Param("backend", "labelled_cloud", "segmentation backend: labelled_cloud (a segmenting camera's instance and "
            "label fields) or geometric (a plain depth camera: supports, objects on them, classes by shape)",
            P.one_of(*SEGMENTERS)),
    P.Param("base_frame", "base_link", "frame of the published scene: the robot's base frame (REP-103)"),
    P.Param("camera_pose", [0.0], "pose of the cloud's frame in base_frame [x, y, z, qx, qy, qz, qw] for clouds not "
                                  "published in base_frame ([0.0]: none, such clouds are refused)",
            lambda v: None if len(v) in (1, 7) else "must have 7 elements (x, y, z, qx, qy, qz, qw) or be [0.0]"),
    P.Param("track_max_jump", 0.1, "a backend without stable ids: a segment keeps the id of the previous frame's "
            "segment of its class within this distance (m; f2p_perception.tracking)",
            lambda v: None if v > 0 else "must be > 0"),
    P.Param("warn_score", 0.5, "segments scored below this (a box far from every class's size range) are named "
            "in a WARN on /diagnostics", lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"),
    P.Param("min_points", 10, "objects with fewer points are left out", lambda v: None if v >= 1 else "must be >= 1"),
    P.Param("max_object_points", 4096, "points kept per object (an even stride; the box uses all of them)",
            lambda v: None if v >= 1 else "must be >= 1"),
    P.Param("max_age_s", 2.0, "warn on /diagnostics when no cloud arrived for this long (s)",
            lambda v: None if v > 0 else "must be > 0"),
    P.Param("camera_reliability", "reliable", "QoS reliability of the camera subscription: 'reliable' (large clouds "
                                              "arrive whole) or 'best_effort' (for drivers that offer only that)",
            P.one_of("reliable", "best_effort")),
    P.Param("max_rate_hz", 10.0, "most scenes segmented per second (the newest cloud each time); leaves the CPU "
                                 "to the rest of the robot when the camera is faster", lambda v: None if v > 0 else "must be > 0"),
    P.Param("camera_queue", 10, "clouds the camera subscription keeps (keep last): more than 1, so that a burst of "
                               "large clouds is not lost while the receiving thread is busy",
            lambda v: None if v >= 1 else "must be >= 1"),
]


def camera_qos(reliability: str = "reliable", queue: int = 10) -> QoSProfile:
    """The camera subscription's QoS: keep last ``queue``, volatile, ``reliability``."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=queue,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT)


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("perception", **kwargs)
        P.declare(self, PARAMS)
        self._sub = self._pub = self._diag = self._watch = None
        self._segmenter = None
        self._receive_group, self._group = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.received = self.accepted = self.rejected = self.skipped = 0
        self._last_cloud = None
        self._newest = None                      # the newest cloud not yet segmented
        self._wake, self._stop = threading.Condition(), False
        self._worker = None

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            self._segmenter = make_segmenter(v["backend"], min_points=int(v["min_points"]))
            self._tracker = None if self._segmenter.stable_ids else SegmentTracker(float(v["track_max_jump"]))
            self._warn_score = float(v["warn_score"])
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._base_frame = v["base_frame"]
        self._camera_pose = list(v["camera_pose"]) if len(v["camera_pose"]) == 7 else None
        self._max_age, self._max_rate = float(v["max_age_s"]), float(v["max_rate_hz"])
        self._max_points = int(v["max_object_points"])
        self._camera_qos = camera_qos(v["camera_reliability"], int(v["camera_queue"]))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub = self.create_lifecycle_publisher(SegmentedSceneMsg, "segmented_scene", latched,
                                                    event_callbacks=NO_EVENT_HANDLERS["pub"])
        self._diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10,
                                                     event_callbacks=NO_EVENT_HANDLERS["pub"])
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop, self._newest = False, None
        self._worker = threading.Thread(target=self._segment_newest, name="perception-segment", daemon=True)
        self._worker.start()
        self._sub = self.create_subscription(PointCloud2, "camera/points", self._on_cloud, self._camera_qos,
                                             callback_group=self._receive_group,
                                             event_callbacks=NO_EVENT_HANDLERS["sub"])
        self._topic, self._last_cloud = self._sub.topic_name, time.monotonic()
        self._watch = self.create_timer(self._max_age / 2, self._check_stale, callback_group=self._group)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_receiving()
        return super().on_deactivate(state)

    def _stop_receiving(self) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self.destroy_timer(self._watch)
            self._sub = self._watch = None
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.destroy_lifecycle_publisher(self._pub)
        self.destroy_lifecycle_publisher(self._diag)
        self._pub = self._diag = self._segmenter = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_receiving()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        self._stop_receiving()                # the worker publishes: it ends first
        super().destroy_node()

    # --- data ------------------------------------------------------------------------
    def segment(self, msg: PointCloud2) -> SegmentedScene:
        """The scene of one cloud message (PointCloudError / ValueError when it cannot be)."""
        cloud = camera_cloud_from_msg(msg)
        if cloud.frame_id != self._base_frame:
            if self._camera_pose is None:
                raise PointCloudError(f"cloud in frame {cloud.frame_id!r}, not {self._base_frame!r}, and no "
                                      "camera_pose to move it there")
            cloud = transform_cloud(cloud, self._camera_pose, self._base_frame)
        objects = limit_points(self._segmenter.segment(SensorFrame(cloud)), self._max_points)
        if self._tracker is not None:
            objects = self._tracker.assign(objects)
        return SegmentedScene(objects, self._base_frame, cloud.stamp_ns, f"camera:{self._segmenter.name}")

    def _on_cloud(self, msg: PointCloud2) -> None:
        """Receive only: keep the newest cloud for the worker (module docstring)."""
        with self._wake:
            self._last_cloud = time.monotonic()
            self.received += 1
            if self._newest is not None:
                self.skipped += 1                       # superseded before it was segmented
            self._newest = msg
            self._wake.notify()

    def _counts(self) -> dict:
        return {"received": self.received, "accepted": self.accepted, "rejected": self.rejected,
                "skipped": self.skipped}

    def _segment_newest(self) -> None:
        period, started = 1.0 / self._max_rate, -float("inf")
        while True:
            with self._wake:
                while not self._stop and (self._newest is None or time.monotonic() < started + period):
                    self._wake.wait(None if self._newest is None else started + period - time.monotonic())
                if self._stop:
                    return
                msg, self._newest = self._newest, None
            started = time.monotonic()
            t0 = time.perf_counter()
            try:
                scene = self.segment(msg)
            except ValueError as exc:                      # PointCloudError is a ValueError
                self.rejected += 1
                self.get_logger().warning(f"rejected cloud (frame {msg.header.frame_id!r}): {exc}",
                                          throttle_duration_sec=5.0)
                self._diag.publish(diagnostics(self, "camera cloud", ERROR, str(exc), **self._counts()))
                continue
            self._pub.publish(scene_to_msg(scene))
            self.accepted += 1
            message = f"{len(scene.objects)} objects in {1000 * (time.perf_counter() - t0):.0f} ms"
            doubtful = [f"{o.id} (score {o.score:.2f})" for o in scene.objects if o.score < self._warn_score]
            if doubtful:                                   # published, but said: it may be two objects as one
                message += (f"; {', '.join(doubtful)} fit no class of the catalogue well: touching objects seen as "
                            "one, or an object the catalogue lacks")
            self._diag.publish(diagnostics(self, "camera cloud", WARN if doubtful else OK, message,
                                           objects=" ".join(scene.object_ids), **self._counts()))

    def _check_stale(self) -> None:
        age = time.monotonic() - self._last_cloud
        if age > self._max_age:
            self._diag.publish(diagnostics(
                self, "camera cloud", WARN, f"no camera cloud for {age:.1f} s: is the camera publishing on "
                f"{self._topic} (with a QoS that matches camera_reliability)?", **self._counts()))


def main(args=None) -> None:
    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
