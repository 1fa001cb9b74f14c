"""``perception`` lifecycle node: the camera's cloud to a SegmentedScene in the robot's frame.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
sub ``camera/points``      sensor_msgs/PointCloud2          the camera (reliable, depth 1)
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
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from f2p_common.interfaces import PointCloudError, SegmentedScene
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_perception.segmentation import SEGMENTERS, SensorFrame, make_segmenter, transform_cloud
from f2p_ros import parameters as P
from f2p_ros.conversions import camera_cloud_from_msg, scene_to_msg
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node

PARAMS = [
    P.Param("backend", "labelled_cloud", "segmentation backend", P.one_of(*SEGMENTERS)),
    P.Param("base_frame", "base_link", "frame of the published scene: the robot's base frame (REP-103)"),
    P.Param("camera_pose", [0.0], "pose of the cloud's frame in base_frame [x, y, z, qx, qy, qz, qw] for clouds not "
                                  "published in base_frame ([0.0]: none, such clouds are refused)",
            lambda v: None if len(v) in (1, 7) else "must have 7 elements (x, y, z, qx, qy, qz, qw) or be [0.0]"),
    P.Param("min_points", 10, "objects with fewer points are left out", lambda v: None if v >= 1 else "must be >= 1"),
    P.Param("max_age_s", 2.0, "warn on /diagnostics when no cloud arrived for this long (s)",
            lambda v: None if v > 0 else "must be > 0"),
]


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("perception", **kwargs)
        P.declare(self, PARAMS)
        self._sub = self._pub = self._diag = self._watch = None
        self._segmenter = None
        self._group = MutuallyExclusiveCallbackGroup()
        self.accepted = self.rejected = 0
        self._last_cloud = None

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            self._segmenter = make_segmenter(v["backend"], min_points=int(v["min_points"]))
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._base_frame = v["base_frame"]
        self._camera_pose = list(v["camera_pose"]) if len(v["camera_pose"]) == 7 else None
        self._max_age = float(v["max_age_s"])
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub = self.create_lifecycle_publisher(SegmentedSceneMsg, "segmented_scene", latched,
                                                    event_callbacks=NO_EVENT_HANDLERS["pub"])
        self._diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10,
                                                     event_callbacks=NO_EVENT_HANDLERS["pub"])
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._sub = self.create_subscription(PointCloud2, "camera/points", self._on_cloud,
                                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
                                             callback_group=self._group, event_callbacks=NO_EVENT_HANDLERS["sub"])
        self._last_cloud = time.monotonic()
        self._watch = self.create_timer(self._max_age / 2, self._check_stale, callback_group=self._group)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.destroy_subscription(self._sub)
        self.destroy_timer(self._watch)
        self._sub = self._watch = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.destroy_lifecycle_publisher(self._pub)
        self.destroy_lifecycle_publisher(self._diag)
        self._pub = self._diag = self._segmenter = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        return TransitionCallbackReturn.SUCCESS

    # --- data ------------------------------------------------------------------------
    def segment(self, msg: PointCloud2) -> SegmentedScene:
        """The scene of one cloud message (PointCloudError / ValueError when it cannot be)."""
        cloud = camera_cloud_from_msg(msg)
        if cloud.frame_id != self._base_frame:
            if self._camera_pose is None:
                raise PointCloudError(f"cloud in frame {cloud.frame_id!r}, not {self._base_frame!r}, and no "
                                      "camera_pose to move it there")
            cloud = transform_cloud(cloud, self._camera_pose, self._base_frame)
        objects = self._segmenter.segment(SensorFrame(cloud))
        return SegmentedScene(objects, self._base_frame, cloud.stamp_ns, f"camera:{self._segmenter.name}")

    def _on_cloud(self, msg: PointCloud2) -> None:
        self._last_cloud = time.monotonic()
        t0 = time.perf_counter()
        try:
            scene = self.segment(msg)
        except ValueError as exc:                      # PointCloudError is a ValueError
            self.rejected += 1
            self.get_logger().warning(f"rejected cloud (frame {msg.header.frame_id!r}): {exc}", throttle_duration_sec=5.0)
            self._diag.publish(diagnostics(self, "camera cloud", ERROR, str(exc), accepted=self.accepted,
                                           rejected=self.rejected))
            return
        self._pub.publish(scene_to_msg(scene))
        self.accepted += 1
        self._diag.publish(diagnostics(
            self, "camera cloud", OK, f"{len(scene.objects)} objects in {1000 * (time.perf_counter() - t0):.0f} ms",
            accepted=self.accepted, rejected=self.rejected, objects=" ".join(scene.object_ids)))

    def _check_stale(self) -> None:
        age = time.monotonic() - self._last_cloud
        if age > self._max_age:
            self._diag.publish(diagnostics(self, "camera cloud", WARN, f"no camera cloud for {age:.1f} s",
                                           accepted=self.accepted, rejected=self.rejected))


def main(args=None) -> None:
    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
