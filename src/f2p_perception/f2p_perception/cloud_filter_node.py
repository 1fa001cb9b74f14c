"""`cloud_filter` lifecycle node: validates, crops and down-samples the camera cloud.

Topics (remap as usual):
  sub  points            sensor_msgs/PointCloud2   camera cloud (any frame; x/y/z float)
  pub  points_filtered   sensor_msgs/PointCloud2   cropped, voxelised, finite, same frame
  pub  /diagnostics      diagnostic_msgs/DiagnosticArray  one status per input cloud:
                         OK, or ERROR with the reason a cloud was rejected (never silent)
Lifecycle (ros2/demos lifecycle_py pattern): configure reads and validates parameters and
creates the publishers; activate subscribes; deactivate unsubscribes; cleanup destroys
the publishers. Parameters: see PARAMS (and the f2p_bringup params file). Endpoints carry no
QoS event handlers (``f2p_ros.nodes.NO_EVENT_HANDLERS`` says why).
"""
from __future__ import annotations

from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2

from f2p_common.interfaces import PointCloudError
from f2p_perception.cloud_filter import CloudFilterConfig, filter_points
from f2p_ros import parameters as P
from f2p_ros.conversions import cloud_to_xyz, xyz_to_cloud
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, diagnostics, run_node

_DEFAULTS = CloudFilterConfig()   # the one home of the defaults; a robot's params YAML overrides them
PARAMS = [
    P.Param("crop_min", [float(v) for v in _DEFAULTS.crop_min],
            "workspace box minimum corner [x, y, z], metres, cloud frame", P.vector3),
    P.Param("crop_max", [float(v) for v in _DEFAULTS.crop_max],
            "workspace box maximum corner [x, y, z], metres, cloud frame", P.vector3),
    P.Param("voxel_size", _DEFAULTS.voxel_size, "voxel edge for down-sampling, metres (0 disables)",
            P.positive_or_zero),
    P.Param("min_points", _DEFAULTS.min_points, "clouds with fewer points left after cropping are rejected",
            P.positive_or_zero),
    P.Param("nan_policy", "drop", "'drop' discards NaN/Inf points (organised depth clouds); 'raise' rejects the cloud",
            P.one_of("drop", "raise")),
]


class CloudFilterNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("cloud_filter", **kwargs)
        P.declare(self, PARAMS)
        self._pub = self._diag = None
        self._cfg: CloudFilterConfig | None = None
        self._nan_policy = "drop"
        self.accepted = 0
        self.rejected = 0

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = P.load(self, PARAMS)
            self._cfg = CloudFilterConfig(tuple(values["crop_min"]), tuple(values["crop_max"]),
                                          float(values["voxel_size"]), int(values["min_points"]))
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._nan_policy = values["nan_policy"]
        self._pub = self.until_cleanup(self.create_lifecycle_publisher(PointCloud2, "points_filtered", 10,
                                                                       event_callbacks=NO_EVENT_HANDLERS["pub"]))
        self._diag = self.create_diagnostics_publisher()
        self.get_logger().info(f"configured: {self._cfg}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.until_deactivate(self.create_subscription(PointCloud2, "points", self._on_cloud, qos_profile_sensor_data,
                                                       event_callbacks=NO_EVENT_HANDLERS["sub"]))
        return super().on_activate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pub = self._diag = self._cfg = None
        return super().on_cleanup(state)

    # --- data ------------------------------------------------------------------------
    def _on_cloud(self, msg: PointCloud2) -> None:
        try:
            xyz = cloud_to_xyz(msg, nan_policy=self._nan_policy)
            out = filter_points(xyz, self._cfg)
        except PointCloudError as exc:
            self.rejected += 1
            self.get_logger().warning(f"rejected cloud (frame {msg.header.frame_id!r}): {exc}",
                                   throttle_duration_sec=5.0)
            self._report(ERROR, str(exc), msg)
            return
        self.accepted += 1
        self._pub.publish(xyz_to_cloud(out, frame_id=msg.header.frame_id, stamp=msg.header.stamp))
        self._report(OK, f"{len(xyz)} -> {len(out)} points", msg)

    def _report(self, level: int, message: str, msg: PointCloud2) -> None:
        self._diag.publish(diagnostics(self, "input cloud", level, message, accepted=self.accepted,
                                       rejected=self.rejected, frame_id=msg.header.frame_id))


def main(args=None) -> None:
    run_node(CloudFilterNode, args)


if __name__ == "__main__":
    main()
