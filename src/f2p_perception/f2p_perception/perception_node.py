"""``perception`` lifecycle node: the camera's cloud or RGB-D images to a SegmentedScene in the robot's frame.

=================================  ===============================  ============================
interface                          type                             what
=================================  ===============================  ============================
sub ``camera/points``              sensor_msgs/PointCloud2          ``input: cloud``: the camera
                                                                    (``camera_reliability``,
                                                                    keep last ``camera_queue``)
sub ``camera/color/image_raw``     sensor_msgs/Image                ``input: rgbd``: colour
sub ``camera/depth/image_rect_raw``  sensor_msgs/Image              depth registered to colour
                                                                    (32FC1 m or 16UC1 mm)
sub ``camera/color/camera_info``   sensor_msgs/CameraInfo           their intrinsics; the three
                                                                    synchronised by stamp
                                                                    (``sync_slop_s``)
sub ``camera_pose_topic``          geometry_msgs/PoseStamped        the camera's pose in
                                                                    ``base_frame`` where no tf
                                                                    (optional; latched)
pub ``segmented_scene``            f2p_interfaces/SegmentedScene    per-object clouds, labels,
                                                                    scores, boxes in
                                                                    ``base_frame``; transient
                                                                    local: a late subscriber
                                                                    gets the latest scene
sub ``expected_motion``            f2p_interfaces/ExpectedMotion    an object a skill is about
                                                                    to move and by how much (the
                                                                    task executor's): tracking
                                                                    looks for it there
srv ``reset_tracking``             std_srvs/Trigger                 forget every tracked id:
                                                                    the world was rearranged
                                                                    (a scene reset, a person
                                                                    clearing the table)
pub ``/diagnostics``               diagnostic_msgs/DiagnosticArray  per frame: OK with the
                                                                    object count, or ERROR with
                                                                    why it was refused; WARN
                                                                    when the camera (or one of
                                                                    its streams) goes silent
=================================  ===============================  ============================

Segmentation backends sit behind ``f2p_perception.segmentation.Segmenter`` (parameter
``backend``): ``labelled_cloud`` and ``geometric`` read a cloud, ``yolo_seg`` and ``sam`` the
RGB-D images (``input: rgbd``; ``geometric`` reads either). An RGB-D frame is the colour
image, the depth image registered to it and their CameraInfo, matched by stamp
(``message_filters`` where installed, else ``f2p_ros.sync``); its depth is back-projected into
an organised cloud. A cloud or image not in ``base_frame`` is moved there by the camera's
transform: from tf (``f2p_ros.tf``: ``tf2_ros`` on a robot, the workspace's buffer on ``/tf`` and
``/tf_static`` where it is not installed), else from the latest pose on
``camera_pose_topic`` (the simulated robot's ``camera/pose``), else from the ``camera_pose``
parameter (a camera fixed to the base); with none of them the frame is refused. A bad frame
(malformed, images of different sizes, no CameraInfo, no valid depth, no transform, no labels
for the backend, more than ``max_segments`` pieces) is reported and dropped; the node keeps running. Lifecycle: configure builds
the backend (loading its model) and the publishers, activate subscribes and starts the
staleness watch, deactivate and cleanup undo them.

Frames are received and segmented on different threads: the subscriptions only keep the
newest frame, a worker segments the newest one whenever it is free, at most ``max_rate_hz``
times a second, and keeps at most ``max_object_points`` points per object. A 640x480 camera at
30 Hz thus never backs up DDS while segmentation runs at its own pace on the latest view;
frames superseded before segmentation are counted on ``/diagnostics`` as ``skipped``. The
camera subscriptions are reliable with a queue of 10: large clouds are fragmented, and best
effort loses every fragmented cloud, a queue of 1 most of them (``benchmarks/cloud_delivery.py``).
A driver that only offers best effort needs ``camera_reliability: best_effort`` (a reliable
subscription does not match it) and, for full-size clouds, decimation at the driver.

Backends that segment each frame afresh (``geometric``, ``convex``, the image backends) keep
object ids from frame to frame with ``f2p_perception.tracking.SegmentTracker``. It follows
objects that the robot moves, not a world replaced at once: after a scene reset the new
objects would inherit the old ones' ids (and classes) where they stand close. Whoever rearranges
the world calls ``reset_tracking`` before stating the next goal: the frame being segmented and
any not yet segmented are dropped, and ids restart from the first frame received afterwards
(new numbers, never an earlier one's). The task executor announces each skill's target and
displacement on ``expected_motion`` before it sends the skill: a carried object is looked for
where it was sent, so it keeps its id (and its contents theirs) however differently the frame
after the carry reads its box.

A camera that sees the arm (a fixed camera in a UR cell, Stretch's head looking at its own
gripper) needs ``self_filter_frames``: the arm's links, through tf, are cut out of every frame
before segmenting (``f2p_perception.self_filter``); a frame whose links tf cannot place at its
stamp is refused, never segmented with the arm in it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from f2p_common.frames import TransformError, quaternion_matrix
from f2p_common.interfaces import CameraCloud, PointCloudError, SegmentedScene
from f2p_interfaces.msg import ExpectedMotion
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_perception.convexity import ConvexConfig
from f2p_perception.geometric import GeometricConfig
from f2p_perception.segmentation import (SEGMENTERS, SensorFrame, check_pieces, perceive, rgbd_frame,
                                         transform_cloud)
from f2p_perception.self_filter import chain_capsules, remove_robot
from f2p_perception.tracking import SegmentTracker
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, camera_cloud_from_msg, camera_info_from_msg,
                                 expected_motion_from_msg, image_from_msg, scene_to_msg, stamp_to_ns)
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node
from f2p_ros.sync import ApproximateTimeSync, stamp_ns, synchronise
from f2p_ros.tf import TransformListener

#: The RGB-D streams of ``input: rgbd``: (message type, topic) each.
RGBD_TOPICS = {"rgb": (Image, "camera/color/image_raw"), "depth": (Image, "camera/depth/image_rect_raw"),
               "info": (CameraInfo, "camera/color/camera_info")}

PARAMS = [
    P.Param("backend", "labelled_cloud", "segmentation backend: labelled_cloud (a segmenting camera's instance and "
            "label fields), geometric (a plain depth camera: supports, objects on them, classes by shape), convex (a "
            "plain depth camera, class-agnostic: objects as locally convex surface patches), yolo_seg "
            "(YOLO masks on the colour image; input rgbd) or sam (segment-anything from geometric or yolo_seg box "
            "prompts; input rgbd)", P.one_of(*SEGMENTERS)),
    P.Param("input", "cloud", "what the camera gives: cloud (PointCloud2 on camera/points) or rgbd (colour, "
            "registered depth and CameraInfo, synchronised)", P.one_of("cloud", "rgbd")),
    P.Param("model_path", "", "yolo_seg: YOLO segmentation weights ('' = the shipped model trained on the "
            "simulator's images); sam: the SAM checkpoint (required; a local file, nothing downloads)"),
    P.Param("confidence", 0.4, "yolo_seg: the least detection score kept (0.25 finds more items but put a false "
            "container in the demo's scene; benchmarks/studies/findings.md)",
            P.probability),
    P.Param("sam_model_type", "vit_b", "sam: the architecture of an official checkpoint (vit_b, vit_l, vit_h)",
            P.one_of("vit_b", "vit_l", "vit_h")),
    P.Param("sam_prompts", "geometric", "sam: the backend whose segments prompt it", P.one_of("geometric", "yolo_seg")),
    P.Param("device", "auto", "yolo_seg / sam: torch device (auto: CUDA when there is one, else cpu)"),
    P.Param("torch_threads", 1, "yolo_seg / sam: torch intra-op threads of this process (the planner has its own)",
            P.at_least(1)),
    P.Param("sync_slop_s", 0.02, "input rgbd: colour, depth and CameraInfo stamps within this are one frame (s)",
            P.positive_or_zero),
    P.Param("base_frame", "base_link", "frame of the published scene: the robot's base frame (REP-103)"),
    P.Param("camera_pose", [0.0], "pose of the camera's frame in base_frame [x, y, z, qx, qy, qz, qw], used when no "
                                  "transform comes from tf or camera_pose_topic ([0.0]: none)",
            lambda v: None if len(v) in (1, 7) else "must have 7 elements (x, y, z, qx, qy, qz, qw) or be [0.0]"),
    P.Param("camera_frame", "camera_color_optical_frame", "the camera's frame: the one frame besides base_frame that "
            "camera_pose_topic or camera_pose may place (others need tf); '' = any frame_id, trusted as the camera's"),
    P.Param("tf_timeout_s", 0.1, "longest wait for the camera's transform at a frame's stamp (s)", P.positive_or_zero),
    P.Param("camera_pose_topic", "", "a latched geometry_msgs/PoseStamped of the camera's frame in base_frame, used "
            "where tf2_ros is not installed ('' = none; the simulated robot publishes camera/pose)"),
    P.Param("self_filter_frames", [""], "the robot's body as a chain of tf frames (f2p_perception.self_filter): "
            "points within self_filter_radii of the segment between each two consecutive frames' origins are removed "
            "before segmenting, so that a camera that sees the arm does not report it ([''] = none)"),
    P.Param("self_filter_radii", [0.1], "one radius (m) for every capsule of self_filter_frames, or one per "
            "capsule", lambda v: None if v and min(v) > 0 else "radii must be positive"),
    P.Param("track_max_jump", 0.1, "a backend without stable ids: a segment keeps the id of the previous frame's "
            "segment of its class within this distance (m; f2p_perception.tracking)",
            P.positive),
    P.Param("warn_score", 0.5, "segments scored below this (a box far from every class's size range) are named "
            "in a WARN on /diagnostics", P.probability),
    P.Param("min_points", 10, "objects with fewer points are left out", P.at_least(1)),
    P.Param("floor_height", 0.05, "geometric and convex (also as sam's prompts): points lower than this in base_frame are the "
            "floor (m; the floor's height in base_frame plus a margin: 0.05 where base_frame lies on the floor, as a "
            "Stretch's does; a UR5 mounted on a 0.75 m table: -0.7)", P.finite),
    P.Param("depth_median", 5, "spatial median filter on an organised cloud's depth before segmenting: the "
                               "window's side in pixels, 3 or 5 (a structured-light sensor's per-pixel noise would "
                               "shred objects into fragments); 0 = off (already filtered by the driver)",
            P.one_of(0, 3, 5)),
    P.Param("max_object_points", 4096, "points kept per object (an even stride; the box uses all of them)",
            P.at_least(1)),
    P.Param("max_segments", 24, "a frame segmented into more pieces is refused (ERROR on /diagnostics, not "
            "published): a scene still settling after a reset, unfiltered depth noise, or clutter beyond the 16 "
            "objects Γ takes", P.at_least(1)),
    P.Param("max_age_s", 2.0, "warn on /diagnostics when no cloud arrived for this long (s)",
            P.positive),
    P.Param("camera_reliability", "reliable", "QoS reliability of the camera subscription: 'reliable' (large clouds "
                                              "arrive whole) or 'best_effort' (for drivers that offer only that)",
            P.one_of("reliable", "best_effort")),
    P.Param("max_cloud_points", 4_000_000, "largest camera frame segmented (points, or pixels of an RGB-D frame; "
            "a 1280x720 camera gives 921,600): a larger one is refused before it is converted", P.at_least(1)),
    P.Param("max_rate_hz", 10.0, "most scenes segmented per second (the newest cloud each time); leaves the CPU "
                                 "to the rest of the robot when the camera is faster", P.positive),
    P.Param("camera_queue", 10, "clouds the camera subscription keeps (keep last): more than 1, so that a burst of "
                               "large clouds is not lost while the receiving thread is busy",
            P.at_least(1)),
]


def backend_options(v: dict) -> dict:
    """The options of the chosen backend from the node's parameter values."""
    if v["backend"] == "yolo_seg":
        return {"weights": v["model_path"], "confidence": float(v["confidence"]), "device": v["device"]}
    geometric = {"config": GeometricConfig(floor_height=float(v["floor_height"]))}
    if v["backend"] == "sam":
        prompt = {"weights": "", "confidence": float(v["confidence"]), "device": v["device"]} \
            if v["sam_prompts"] == "yolo_seg" else geometric
        return {"checkpoint": v["model_path"], "model_type": v["sam_model_type"], "prompts": v["sam_prompts"],
                "prompt_options": prompt, "device": v["device"]}
    if v["backend"] == "convex":
        return {"config": ConvexConfig(supports=geometric["config"])}
    return geometric if v["backend"] == "geometric" else {}


def camera_qos(reliability: str = "reliable", queue: int = 10) -> QoSProfile:
    """The camera subscription's QoS: keep last ``queue``, volatile, ``reliability``."""
    return qos.sensor(queue, best_effort=reliability != "reliable")


class _Superseded(Exception):
    """The frame was received before ``reset_tracking``: the world it shows is gone."""


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("perception", **kwargs)
        P.declare(self, PARAMS)
        self._sync = None
        self._pub = self._diag = None
        self._segmenter = None
        self._receive_group, self._group = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.received = self.accepted = self.rejected = self.skipped = self.self_filtered = 0
        self._last_cloud = None
        self._newest = None                      # the newest cloud not yet segmented
        self._wake, self._stop = threading.Condition(), False
        self._tracking_epoch = 0                 # bumped by reset_tracking: a frame from before is dropped
        self.create_guarded_service(Trigger, "reset_tracking", self._on_reset_tracking)

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            if v["backend"] in ("yolo_seg", "sam"):
                import torch
                torch.set_num_threads(int(v["torch_threads"]))
            self._segmenter = SEGMENTERS.make(v["backend"], min_points=int(v["min_points"]), **backend_options(v))
            if "rgb" in self._segmenter.needs and v["input"] != "rgbd":
                raise ValueError(f"backend {v['backend']} segments the colour image: set input to rgbd")
            self._tracker = None if self._segmenter.stable_ids else SegmentTracker(float(v["track_max_jump"]))
            self._warn_score = float(v["warn_score"])
        except (ValueError, ImportError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._base_frame, self._input = v["base_frame"], v["input"]
        self._self_frames = [f for f in v["self_filter_frames"] if f]
        self._self_radii = list(v["self_filter_radii"])
        if self._self_frames:
            try:
                chain_capsules([np.zeros(3)] * len(self._self_frames), self._self_radii)
            except ValueError as exc:
                self.get_logger().error(f"configure failed: self_filter_radii: {exc}")
                return TransitionCallbackReturn.FAILURE
        self._camera_pose = list(v["camera_pose"]) if len(v["camera_pose"]) == 7 else None
        self._camera_frame = v["camera_frame"]
        self._camera_pose_topic, self._slop = v["camera_pose_topic"], float(v["sync_slop_s"])
        self._tf, self._tf_timeout, self._tf_problem = (TransformListener(self, callback_group=self._receive_group),
                                                        float(v["tf_timeout_s"]), "")
        for endpoint in self._tf.endpoints:
            self.until_cleanup(endpoint)
        self._max_age, self._max_rate = float(v["max_age_s"]), float(v["max_rate_hz"])
        self._max_points, self._max_segments = int(v["max_object_points"]), int(v["max_segments"])
        self._depth_median = int(v["depth_median"])
        self._max_cloud_points = int(v["max_cloud_points"])
        self._camera_qos = camera_qos(v["camera_reliability"], int(v["camera_queue"]))
        latched = qos.latched()
        self._pub = self.until_cleanup(self.create_lifecycle_publisher(SegmentedSceneMsg, "segmented_scene", latched,
                                                                       event_callbacks=NO_EVENT_HANDLERS["pub"]))
        self._diag = self.create_diagnostics_publisher()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop, self._newest = False, None
        self.start_worker(self._segment_newest, "segment", stop=self._stop_segmenting)   # it publishes: ends first
        self._sync, self._pose_msg = None, None
        if self._input == "cloud":
            sub = self.until_deactivate(self.create_subscription(
                PointCloud2, "camera/points", self._on_cloud, self._camera_qos, callback_group=self._receive_group,
                event_callbacks=NO_EVENT_HANDLERS["sub"]))
            self._topic = sub.topic_name
        else:
            self._sync, subs = synchronise(self, RGBD_TOPICS, self._camera_qos, self._slop,
                                           self._camera_qos.depth, self._on_rgbd, self._receive_group)
            for sub in subs:
                self.until_deactivate(sub)
            self._topic = ", ".join(self.resolve_topic_name(t) for _m, t in RGBD_TOPICS.values())
        if self._camera_pose_topic:
            self.until_deactivate(self.create_subscription(PoseStamped, self._camera_pose_topic, self._on_pose,
                                                           qos.latched(), callback_group=self._receive_group))
        if self._tracker is not None:
            self.until_deactivate(self.create_subscription(ExpectedMotion, "expected_motion", self._on_expected_motion,
                                                           qos.events(), callback_group=self._receive_group))
        self._last_cloud = time.monotonic()
        self.until_deactivate(self.create_timer(self._max_age / 2, self._check_stale, callback_group=self._group))
        return super().on_activate(state)

    def _stop_segmenting(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)
        self._sync = None
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pub = self._diag = self._segmenter = None
        self._tf.close()
        return super().on_cleanup(state)

    # --- data ------------------------------------------------------------------------
    def camera_pose(self, frame_id: str, stamp) -> list[float] | None:
        """The pose of ``frame_id`` in ``base_frame`` (x, y, z, qx, qy, qz, qw): tf, else the pose topic,
        else the parameter (module docstring); None when nothing gives one."""
        if frame_id == self._base_frame:
            return [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        try:
            return list(self._tf.lookup(self._base_frame, frame_id, stamp_to_ns(stamp), self._tf_timeout))
        except TransformError as exc:                        # no tf for it: the pose topic or parameter may place it
            self._tf_problem = str(exc)
        if self._camera_frame and frame_id != self._camera_frame:
            return None                                      # a frame nobody placed: never moved by the camera's pose
        return self.placed_camera()

    def placed_camera(self) -> list[float] | None:
        """The camera's pose in ``base_frame`` from camera_pose_topic, else the camera_pose
        parameter; None when neither gives one."""
        pose = self._pose_msg
        if pose is not None and pose.header.frame_id == self._base_frame:
            p, q = pose.pose.position, pose.pose.orientation
            return [p.x, p.y, p.z, q.x, q.y, q.z, q.w]
        return self._camera_pose

    def _no_pose(self, frame_id: str) -> str:
        if self._camera_frame and frame_id != self._camera_frame:
            return (f"frame {frame_id!r} is unknown: not {self._base_frame!r}, not in tf, not the camera_frame "
                    f"{self._camera_frame!r} that camera_pose_topic / camera_pose place")
        return (f"frame {frame_id!r}, not {self._base_frame!r}, and no transform (tf: {self._tf_problem or 'none'}; "
                "camera_pose_topic) or camera_pose to move it there")

    def segment(self, msg: PointCloud2, epoch: int | None = None) -> SegmentedScene:
        """The scene of one cloud message (PointCloudError / ValueError when it cannot be);
        ``epoch``: the tracking epoch it was received in (None: the current one)."""
        self._check_size(int(msg.width) * int(msg.height))
        cloud = camera_cloud_from_msg(msg)
        if cloud.frame_id != self._base_frame:
            pose = self.camera_pose(cloud.frame_id, msg.header.stamp)
            if pose is None:
                raise PointCloudError(self._no_pose(cloud.frame_id))
            cloud = transform_cloud(cloud, pose, self._base_frame)
        else:                              # already in base_frame: the viewpoint, where something gives it
            pose = self.placed_camera()
        return self._scene(SensorFrame(cloud, camera_pose=pose), cloud.stamp_ns, epoch)

    def segment_rgbd(self, msgs: dict, epoch: int | None = None) -> SegmentedScene:
        """The scene of one synchronised RGB-D frame ({"rgb", "depth", "info"} messages)."""
        self._check_size(max(int(msgs[k].width) * int(msgs[k].height) for k in ("rgb", "depth")))
        rgb, depth = image_from_msg(msgs["rgb"]), image_from_msg(msgs["depth"])
        if rgb.ndim != 3 or depth.ndim != 2:
            raise ConversionError(f"colour must be rgb8/bgr8 and depth 32FC1/16UC1, got {msgs['rgb'].encoding} and "
                                  f"{msgs['depth'].encoding}")
        width, height, intrinsics = camera_info_from_msg(msgs["info"])
        frame_id = msgs["depth"].header.frame_id
        pose = self.camera_pose(frame_id, msgs["depth"].header.stamp)
        if pose is None and self._camera_frame and frame_id != self._camera_frame:
            raise PointCloudError(self._no_pose(frame_id))
        frame = rgbd_frame(rgb, depth, intrinsics, pose, self._base_frame, frame_id, stamp_ns(msgs["depth"]),
                           info_size=(width, height))
        return self._scene(frame, frame.cloud.stamp_ns, epoch)

    def _check_size(self, points: int) -> None:
        if points > self._max_cloud_points:
            raise PointCloudError(f"{points} points, more than max_cloud_points {self._max_cloud_points}: not segmented")

    def _without_robot(self, cloud: CameraCloud) -> CameraCloud:
        """``cloud`` (in base_frame) less the robot's body (self_filter_frames, through tf at the
        cloud's stamp); PointCloudError when a frame of the chain cannot be placed."""
        try:
            origins = [self._tf.lookup(self._base_frame, f, cloud.stamp_ns, self._tf_timeout)[:3]
                       for f in self._self_frames]
        except TransformError as exc:
            raise PointCloudError(f"self filter: the robot's body cannot be placed at the frame's stamp: {exc}") from None
        cloud, self.self_filtered = remove_robot(cloud, chain_capsules(origins, self._self_radii))
        return cloud

    def _scene(self, frame: SensorFrame, stamp: int, epoch: int | None) -> SegmentedScene:
        if self._self_frames:
            frame = replace(frame, cloud=self._without_robot(frame.cloud))
        objects = perceive(self._segmenter, frame, self._depth_median, self._max_points)[1]
        check_pieces(objects, self._max_segments)
        with self._wake:
            if epoch is not None and epoch != self._tracking_epoch:
                raise _Superseded()
            if self._tracker is not None:
                objects = self._tracker.assign(objects)
        return SegmentedScene(objects, self._base_frame, stamp, f"camera:{self._segmenter.name}")

    def _on_reset_tracking(self, request, response):
        """Forget every tracked object (module docstring); refused before configure."""
        with self._wake:
            if self._segmenter is None:
                response.success, response.message = False, "not configured: nothing is tracked yet"
                return response
            self._tracking_epoch += 1
            self._newest = None                     # received before the reset: the old world
            if self._tracker is not None:
                self._tracker = self._tracker.restarted()
        response.success = True
        response.message = ("tracking restarted: ids from the next frame on" if self._tracker is not None else
                            f"backend {self._segmenter.name} has stable ids of its own: nothing to forget")
        return response

    def _on_expected_motion(self, msg: ExpectedMotion) -> None:
        """Tell the tracker where a skill is moving an object (module docstring)."""
        try:
            object_id, displacement, frame_id = expected_motion_from_msg(msg)
            if frame_id and frame_id != self._base_frame:            # a direction: rotate it only
                pose = self._tf.lookup(self._base_frame, frame_id, 0, self._tf_timeout)
                displacement = quaternion_matrix(pose[3:]) @ displacement
        except (ValueError, TransformError) as exc:
            self.get_logger().warning(f"expected_motion dropped: {exc}")
            return
        with self._wake:
            known = self._tracker is not None and self._tracker.expect_move(object_id, displacement)
        if not known:
            self.get_logger().warning(f"expected_motion: no tracked object {object_id!r}; nothing to look for")

    def _on_pose(self, msg: PoseStamped) -> None:
        self._pose_msg = msg

    def _on_rgbd(self, msgs: dict) -> None:
        self._on_cloud(msgs)

    def _on_cloud(self, msg) -> None:
        """Receive only: keep the newest frame (a cloud, or RGB-D messages) for the worker (module docstring)."""
        with self._wake:
            self._last_cloud = time.monotonic()
            self.received += 1
            if self._newest is not None:
                self.skipped += 1                       # superseded before it was segmented
            self._newest = msg
            self._wake.notify()

    def _counts(self) -> dict:
        return {"received": self.received, "accepted": self.accepted, "rejected": self.rejected,
                "skipped": self.skipped, "robot_points_removed": self.self_filtered}

    def _segment_newest(self) -> None:
        try:
            self._segment_loop()
        except Exception:
            if self.context.ok():
                raise
            # The process is shutting down (Ctrl-C) while a frame was being segmented: its
            # publishers went with the context, and there is no one left to tell.

    def _segment_loop(self) -> None:
        period, started = 1.0 / self._max_rate, -float("inf")
        while True:
            with self._wake:
                while not self._stop and (self._newest is None or time.monotonic() < started + period):
                    self._wake.wait(None if self._newest is None else started + period - time.monotonic())
                if self._stop:
                    return
                msg, self._newest, epoch = self._newest, None, self._tracking_epoch
            started = time.monotonic()
            t0 = time.perf_counter()
            try:
                scene = self.segment_rgbd(msg, epoch) if isinstance(msg, dict) else self.segment(msg, epoch)
            except _Superseded:
                continue
            except ValueError as exc:                      # PointCloudError, ConversionError are ValueErrors
                self.rejected += 1
                frame_id = (msg["depth"] if isinstance(msg, dict) else msg).header.frame_id
                self.get_logger().warning(f"rejected camera frame (frame {frame_id!r}): {exc}",
                                          throttle_duration_sec=5.0)
                self._diag.publish(diagnostics(self, "camera cloud", ERROR, str(exc), **self._counts()))
                continue
            with self._wake:
                if epoch != self._tracking_epoch:          # tracking restarted since: the old world's scene
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
        silent = self._sync.silent(self._max_age) if isinstance(self._sync, ApproximateTimeSync) else []
        if silent:                                         # some streams arrive, these do not: no frame can form
            topics = ", ".join(self.resolve_topic_name(RGBD_TOPICS[s][1]) for s in silent)
            self._diag.publish(diagnostics(
                self, "camera cloud", WARN, f"no message on {topics} for {self._max_age:.1f} s while the other camera "
                "streams arrive: no RGB-D frame can be formed (is the CameraInfo published?)", **self._counts()))
        elif age > self._max_age:
            self._diag.publish(diagnostics(
                self, "camera cloud", WARN, f"no camera cloud for {age:.1f} s: is the camera publishing on "
                f"{self._topic} (with a QoS that matches camera_reliability)?", **self._counts()))


def main(args=None) -> None:
    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
