"""The one conversion module of f2p: its dataclasses and numpy arrays <-> ROS messages.

Every node converts here, nowhere else, and every conversion is lossless both ways: a
dataclass sent and received is equal to the one sent (``test/ros/test_conversions.py``).

==========================================  ===================================================
f2p side                                    message
==========================================  ===================================================
(N, 3) float32 points [, (N, 3) uint8 RGB]  sensor_msgs/PointCloud2 (x, y, z float32 [, rgb])
``f2p_common.interfaces.CameraCloud``       sensor_msgs/PointCloud2 (+ rgb, instance, label)
(H, W, 3) uint8 RGB / (H, W) float32 depth  sensor_msgs/Image rgb8 / 32FC1 (m; 16UC1 mm read too)
(width, height, (fx, fy, cx, cy))           sensor_msgs/CameraInfo (pinhole, no distortion)
``f2p_common.interfaces.SegmentedScene``    f2p_interfaces/SegmentedScene
``f2p_common.interfaces.RelationState``     f2p_interfaces/RelationState
goal literal (predicate, i, j) + ids        f2p_interfaces/Relation
``f2p_common.interfaces.SkillCall``         f2p_interfaces/SkillCall
``f2p_common.interfaces.Plan``              f2p_interfaces/Plan
``f2p_common.interfaces.ModelInfo``         f2p_interfaces/ModelInfo
``f2p_common.model_transfer.ModelChunk``    f2p_interfaces/FetchModel's response
``f2p_common.commands.SignedCommand``       f2p_interfaces/CommandAuth (+ the request's command)
``f2p_failure.events.FailureEvent``         f2p_interfaces/FailureEvent
``f2p_common.interfaces.Shape`` (a list)    visualization_msgs/MarkerArray (after a DELETEALL)
``stamp_ns`` (int nanoseconds)              builtin_interfaces/Time
a stage name ("verify_plan", "fine_tune")   the message's ``uint8 STAGE_*`` constant
==========================================  ===================================================

sensor_msgs_py is not among the PyPI ROS wheels, so PointCloud2 layouts are decoded here with
numpy structured dtypes (x/y/z as FLOAT32 or FLOAT64, either byte order, extra fields
allowed; ``rgb`` packed as in PCL: 0x00RRGGBB in a FLOAT32 or UINT32 field). Every malformed
message raises an error naming what is wrong: :class:`~f2p_common.interfaces.PointCloudError`
for clouds, :class:`ConversionError` for the rest, ``FailureEventError`` for an event that
does not validate. Frames and units are REP-103's (metres, x forward, z up).
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from f2p_interfaces import msg as f2p_msg
from geometry_msgs.msg import Point, Pose, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from f2p_common.commands import SignedCommand
from f2p_common.model_transfer import ModelChunk
from f2p_common.interfaces import (CameraCloud, GoalLiteral, ModelInfo, OrientedBox, Plan, PointCloudError,
                                   RelationState, SegmentedObject, SegmentedScene, Shape, SkillCall, StepProgress,
                                   finite_rows, ground_literal)
from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS
from f2p_failure.events import CATEGORIES, FailureEvent

__all__ = [
    "ConversionError", "PointCloudError", "cloud_to_xyz", "cloud_to_arrays", "xyz_to_cloud", "camera_cloud_to_msg",
    "camera_cloud_from_msg",
    "stamp_to_ns", "ns_to_stamp", "scene_to_msg", "scene_from_msg", "relations_to_msg", "relations_from_msg",
    "literal_to_msg", "literal_from_msg", "skill_call_to_msg", "skill_call_from_msg", "plan_to_msg",
    "plan_from_msg", "progress_from_msg", "model_info_to_msg", "model_info_from_msg", "command_auth_to_msg",
    "command_auth_from_msg",
    "failure_event_to_msg", "failure_event_from_msg",
    "shapes_to_msg", "shapes_from_msg", "image_to_msg", "image_from_msg", "camera_info_to_msg", "camera_info_from_msg",
]


class ConversionError(ValueError):
    """A message that cannot be converted as it is; the message says which field and why."""


# ---------------------------------------------------------------------------- time
def stage_to_msg(msg_type, name: str) -> int:
    """The ``STAGE_<NAME>`` constant of ``msg_type`` (TaskProgress, LearnerProgress) for a stage of
    the ROS-free code; ConversionError for a stage the message does not define."""
    code = getattr(msg_type, "STAGE_" + name.upper(), None)
    if not name or not isinstance(code, int):
        raise ConversionError(f"{msg_type.__name__} has no stage {name!r}; it has {', '.join(stages_of(msg_type))}")
    return code


def stage_from_msg(msg_type, code: int) -> str:
    """The stage name of ``msg_type``'s constant ``code`` ("unknown" for 0 or a value it does not define)."""
    names = {getattr(msg_type, "STAGE_" + n.upper()): n for n in stages_of(msg_type)}
    return names.get(int(code), "unknown")


def stages_of(msg_type) -> tuple[str, ...]:
    """The stage names ``msg_type`` defines a ``STAGE_*`` constant for (not "unknown"), in its order."""
    return tuple(k[len("STAGE_"):].lower() for k, v in vars(msg_type).items()
                 if k.startswith("STAGE_") and k != "STAGE_UNKNOWN" and isinstance(v, int))


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    if ns < 0:
        raise ConversionError(f"a stamp must be >= 0 ns, got {ns}")
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


# ---------------------------------------------------------------------------- point clouds
# PointField datatype code -> numpy scalar type (sensor_msgs/PointField constants).
_DTYPES = {
    PointField.INT8: np.int8, PointField.UINT8: np.uint8,
    PointField.INT16: np.int16, PointField.UINT16: np.uint16,
    PointField.INT32: np.int32, PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32, PointField.FLOAT64: np.float64,
}
_XYZ = ("x", "y", "z")


#: Fields f2p reads besides x/y/z: packed colour, a segmenting camera's instance and class.
_EXTRA = ("rgb", "instance", "label")


def _record_view(msg: PointCloud2) -> tuple[dict, np.ndarray, str]:
    """Check a cloud's layout; (fields by name, raw bytes as (N, point_step) uint8, byte order).

    Refused: a field named twice, and fields f2p reads whose bytes overlap (a cloud whose x, y
    and z all sit at offset 0 would otherwise decode as garbage)."""
    if not isinstance(msg, PointCloud2):
        raise PointCloudError(f"expected sensor_msgs/PointCloud2, got {type(msg).__name__}")
    names = [f.name for f in msg.fields]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PointCloudError(f"point cloud names field(s) {dup} more than once")
    fields = {f.name: f for f in msg.fields}
    used = sorted((int(f.offset), int(f.offset) + np.dtype(_DTYPES[f.datatype]).itemsize * max(int(f.count), 1), n)
                  for n, f in fields.items() if n in _XYZ + _EXTRA and f.datatype in _DTYPES)
    for (a0, a1, an), (b0, b1, bn) in zip(used, used[1:]):
        if b0 < a1:
            raise PointCloudError(f"fields {an!r} (bytes {a0}..{a1}) and {bn!r} (from byte {b0}) overlap")
    missing = [n for n in _XYZ if n not in fields]
    if missing:
        raise PointCloudError(f"point cloud lacks field(s) {missing}; it has {sorted(fields) or 'no fields'}")
    for name in _XYZ:
        f = fields[name]
        if f.datatype not in (PointField.FLOAT32, PointField.FLOAT64):
            raise PointCloudError(
                f"field {name!r} has datatype {f.datatype}; x/y/z must be FLOAT32 (7) or FLOAT64 (8)")
        if f.count != 1:
            raise PointCloudError(f"field {name!r} has count {f.count}; expected 1")
    n_points = int(msg.width) * int(msg.height)
    step = int(msg.point_step)
    if n_points and step <= 0:
        raise PointCloudError(f"point_step is {step} for a cloud of {n_points} points")
    for name, f in fields.items():
        if f.datatype not in _DTYPES:
            continue
        end = f.offset + np.dtype(_DTYPES[f.datatype]).itemsize * max(int(f.count), 1)
        if name in _XYZ + _EXTRA and end > step:
            raise PointCloudError(f"field {name!r} (offset {f.offset}) does not fit in point_step {step}")
    if msg.height > 1 and msg.row_step != msg.width * step:
        raise PointCloudError(
            f"row_step {msg.row_step} != width {msg.width} * point_step {step}; padded rows are not supported")
    expected = n_points * step
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview)) else bytes(msg.data)
    if len(data) != expected:
        raise PointCloudError(
            f"data holds {len(data)} bytes but width*height*point_step = {msg.width}*{msg.height}*{step} "
            f"= {expected}")
    raw = np.frombuffer(data, dtype=np.uint8, count=expected).reshape(n_points, step if n_points else 0)
    return fields, raw, ">" if msg.is_bigendian else "<"


def _field(raw: np.ndarray, f: PointField, order: str) -> np.ndarray:
    dt = np.dtype(_DTYPES[f.datatype]).newbyteorder(order)
    return np.ascontiguousarray(raw[:, f.offset:f.offset + dt.itemsize]).view(dt).reshape(-1)


def cloud_to_arrays(msg: PointCloud2, *, nan_policy: str = "raise",
                    allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a PointCloud2 into (N, 3) float32 x/y/z and, when it has an ``rgb`` field,
    (N, 3) uint8 colours (else None).

    nan_policy: "raise" (default) refuses clouds with any non-finite point; "drop" removes
    such points (organised depth-camera clouds mark missing returns with NaN).
    allow_empty: accept a cloud with no (remaining) points; by default it is an error,
    because every f2p consumer needs points.
    """
    if nan_policy not in ("raise", "drop"):
        raise ValueError(f"nan_policy must be 'raise' or 'drop', got {nan_policy!r}")
    fields, raw, order = _record_view(msg)
    xyz = np.stack([_field(raw, fields[n], order).astype(np.float32) for n in _XYZ], axis=-1).reshape(-1, 3)
    rgb = None
    if "rgb" in fields:
        f = fields["rgb"]
        if f.datatype not in (PointField.FLOAT32, PointField.UINT32) or f.count != 1:
            raise PointCloudError(f"field 'rgb' has datatype {f.datatype} x {f.count}; expected one packed "
                                  "FLOAT32 (7) or UINT32 (6)")
        packed = np.ascontiguousarray(raw[:, f.offset:f.offset + 4]).view(np.dtype(np.uint32).newbyteorder(order))
        packed = packed.reshape(-1).astype(np.uint32)
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)
    finite = finite_rows(xyz)
    if not finite.all():
        bad = int((~finite).sum())
        if nan_policy == "raise":
            raise PointCloudError(f"{bad} of {len(xyz)} points are NaN/Inf; pass nan_policy='drop' to discard them")
        xyz = xyz[finite]
        rgb = None if rgb is None else rgb[finite]
    if len(xyz) == 0 and not allow_empty:
        raise PointCloudError("point cloud is empty" + (" after dropping NaN/Inf points" if len(finite) else ""))
    return np.ascontiguousarray(xyz), (None if rgb is None else np.ascontiguousarray(rgb))


def cloud_to_xyz(msg: PointCloud2, *, nan_policy: str = "raise", allow_empty: bool = False) -> np.ndarray:
    """The (N, 3) float32 x/y/z of a PointCloud2 (see :func:`cloud_to_arrays`)."""
    return cloud_to_arrays(msg, nan_policy=nan_policy, allow_empty=allow_empty)[0]


def xyz_to_cloud(points, colors=None, *, frame_id: str = "", stamp=None, allow_empty: bool = False) -> PointCloud2:
    """Encode (N, 3) finite x/y/z (metres) and optional (N, 3) uint8 colours as an unorganised
    PointCloud2: float32 x, y, z and, with colours, a packed FLOAT32 ``rgb`` field."""
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise PointCloudError(f"points must have shape (N, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise PointCloudError(f"points must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise PointCloudError(f"{int((~np.isfinite(arr).all(axis=1)).sum())} points are NaN/Inf")
    if len(arr) == 0 and not allow_empty:
        raise PointCloudError("refusing to encode an empty point cloud (allow_empty=False)")
    names = list(_XYZ)
    if colors is not None:
        col = np.asarray(colors)
        if col.shape != arr.shape or col.dtype != np.uint8:
            raise PointCloudError(f"colors must be uint8 {arr.shape}, got {col.dtype} {col.shape}")
        packed = (col[:, 0].astype(np.uint32) << 16) | (col[:, 1].astype(np.uint32) << 8) | col[:, 2].astype(np.uint32)
        rec = np.empty((len(arr), 4), np.float32)
        rec[:, :3] = arr
        rec[:, 3] = packed.view(np.float32)
        names.append("rgb")
    else:
        rec = arr
    msg = PointCloud2()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height = 1
    msg.width = len(arr)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = 4 * len(names)
    msg.row_step = msg.point_step * len(arr)
    msg.is_dense = True
    msg.data = np.ascontiguousarray(rec).tobytes()
    return msg


def camera_cloud_to_msg(cloud: CameraCloud) -> PointCloud2:
    """A camera cloud as the PointCloud2 a driver publishes: float32 x, y, z, packed ``rgb``
    and INT32 ``instance`` / ``label`` when present; organised as ``height`` x ``width``."""
    names, columns = list(_XYZ), [cloud.points]
    if cloud.colors is not None:
        c = cloud.colors.astype(np.uint32)
        columns.append(((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)[:, None])
        names.append("rgb")
    for name in ("instance", "label"):
        v = getattr(cloud, name)
        if v is not None:
            columns.append(v.view(np.float32)[:, None])      # same 4 bytes, reinterpreted
            names.append(name)
    rec = np.concatenate([np.asarray(c, np.float32).reshape(len(cloud.points), -1) for c in columns], axis=1)
    types = {"instance": PointField.INT32, "label": PointField.INT32}
    msg = PointCloud2(height=cloud.height, width=cloud.width, is_bigendian=sys.byteorder == "big",
                      point_step=4 * len(names), is_dense=bool(np.isfinite(cloud.points).all()))
    msg.header.frame_id, msg.header.stamp = cloud.frame_id, ns_to_stamp(cloud.stamp_ns)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=types.get(n, PointField.FLOAT32), count=1)
                  for i, n in enumerate(names)]
    msg.row_step = msg.point_step * cloud.width
    msg.data = np.ascontiguousarray(rec).tobytes()
    return msg


def camera_cloud_from_msg(msg: PointCloud2) -> CameraCloud:
    """Every point of a PointCloud2 as it is (NaN returns and the organised layout kept), with
    ``rgb``, ``instance`` and ``label`` when the cloud has them (INT32 / UINT32 / INT16 / UINT16 /
    INT8 / UINT8 instance and label fields are read). PointCloudError for a bad layout."""
    fields, raw, order = _record_view(msg)
    xyz = np.stack([_field(raw, fields[n], order).astype(np.float32) for n in _XYZ], axis=-1).reshape(-1, 3)
    colors = instance = label = None
    if "rgb" in fields:
        f = fields["rgb"]
        if f.datatype not in (PointField.FLOAT32, PointField.UINT32) or f.count != 1:
            raise PointCloudError(f"field 'rgb' has datatype {f.datatype} x {f.count}; expected one packed "
                                  "FLOAT32 (7) or UINT32 (6)")
        packed = np.ascontiguousarray(raw[:, f.offset:f.offset + 4]).view(np.dtype(np.uint32).newbyteorder(order))
        packed = packed.reshape(-1).astype(np.uint32)
        colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)
    ints = (PointField.INT8, PointField.UINT8, PointField.INT16, PointField.UINT16, PointField.INT32, PointField.UINT32)
    for name in ("instance", "label"):
        if name in fields:
            f = fields[name]
            if f.datatype not in ints or f.count != 1:
                raise PointCloudError(f"field {name!r} has datatype {f.datatype} x {f.count}; expected one integer")
            v = _field(raw, f, order).astype(np.int64)
            if name == "instance":
                instance = v
            else:
                label = v
    try:
        return CameraCloud(xyz, colors, instance, label, msg.header.frame_id, stamp_to_ns(msg.header.stamp),
                           max(int(msg.height), 1) if len(xyz) else 1)
    except PointCloudError as e:
        raise PointCloudError(f"camera cloud: {e}") from None


# ---------------------------------------------------------------------------- transforms
def transform_to_msg(parent: str, child: str, pose, stamp_ns: int = 0) -> TransformStamped:
    """``child``'s pose (x, y, z, qx, qy, qz, qw) in ``parent`` as a TransformStamped (tf's form)."""
    t = TransformStamped()
    t.header.frame_id, t.header.stamp, t.child_frame_id = parent, ns_to_stamp(stamp_ns), child
    tr, r = t.transform.translation, t.transform.rotation
    tr.x, tr.y, tr.z, r.x, r.y, r.z, r.w = (float(v) for v in pose)
    return t


def transform_from_msg(msg: TransformStamped) -> tuple[str, str, np.ndarray, int]:
    """(parent, child, pose, stamp_ns) of a TransformStamped; ConversionError for a non-finite
    pose or a quaternion that is not a unit one."""
    tr, r = msg.transform.translation, msg.transform.rotation
    pose = np.array([tr.x, tr.y, tr.z, r.x, r.y, r.z, r.w], np.float64)
    if not np.isfinite(pose).all() or abs(np.linalg.norm(pose[3:]) - 1.0) > 1e-3:
        raise ConversionError(f"transform {msg.header.frame_id!r} -> {msg.child_frame_id!r}: {list(pose)} is no "
                              "finite pose with a unit quaternion")
    return msg.header.frame_id, msg.child_frame_id, pose, stamp_to_ns(msg.header.stamp)


def reset_response(resp, description: str, object_ids, labels, goal, boxes, stamp_ns: int):
    """``ResetScene.Response`` of a loaded scene: ``goal`` as (predicate, subject id, object id or
    None) over ``object_ids``, ``boxes`` their OrientedBoxes in the base frame."""
    resp.success, resp.message = True, f"loaded {description}"
    resp.object_ids, resp.labels = list(object_ids), list(labels)
    index = {o: i for i, o in enumerate(object_ids)}
    resp.goal = [literal_to_msg((p, index[s], None if o is None else index[o]), list(object_ids)) for p, s, o in goal]
    resp.boxes = [box_to_msg(b) for b in boxes]
    resp.stamp = ns_to_stamp(stamp_ns)
    return resp


# ---------------------------------------------------------------------------- joints
def ns_to_duration(ns: int) -> Duration:
    return Duration(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def duration_to_ns(d: Duration) -> int:
    return int(d.sec) * 1_000_000_000 + int(d.nanosec)


def joint_trajectory_to_msg(joints, positions, times, velocities=None, frame_id: str = "",
                            stamp_ns: int = 0) -> JointTrajectory:
    """A JointTrajectory: ``positions`` (N, n) at ``times`` (N,) s from the header's stamp (0:
    start when received, as ``FollowJointTrajectory`` controllers do), ``velocities`` (N, n)."""
    positions = np.asarray(positions, np.float64)
    msg = JointTrajectory(joint_names=list(joints))
    msg.header.frame_id, msg.header.stamp = frame_id, ns_to_stamp(stamp_ns)
    for k, (q, t) in enumerate(zip(positions, times)):
        point = JointTrajectoryPoint(positions=[float(v) for v in q],
                                     time_from_start=ns_to_duration(int(round(float(t) * 1e9))))
        if velocities is not None:
            point.velocities = [float(v) for v in velocities[k]]
        msg.points.append(point)
    return msg


def joint_trajectory_from_msg(msg: JointTrajectory) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(joint names, positions (N, n), times (N,) s) of a JointTrajectory; ConversionError for a
    point without one position per joint, non-finite values or times that do not increase."""
    names = list(msg.joint_names)
    if not msg.points:
        raise ConversionError("the trajectory has no points")
    if len(set(names)) != len(names) or not names:
        raise ConversionError(f"joint_names must be unique and non-empty, got {names}")
    pos = np.full((len(msg.points), len(names)), np.nan)
    times = np.empty(len(msg.points))
    for k, p in enumerate(msg.points):
        if len(p.positions) != len(names):
            raise ConversionError(f"point {k} has {len(p.positions)} positions for {len(names)} joints")
        pos[k], times[k] = p.positions, duration_to_ns(p.time_from_start) / 1e9
    if not np.isfinite(pos).all():
        raise ConversionError("the trajectory has non-finite positions")
    if np.any(np.diff(times) <= 0) or times[0] < 0:
        raise ConversionError("time_from_start must increase strictly from point to point")
    return names, pos, times


def joint_state_to_msg(names, positions, velocities=None, efforts=None, stamp_ns: int = 0) -> JointState:
    msg = JointState(name=list(names), position=[float(v) for v in positions])
    if velocities is not None:
        msg.velocity = [float(v) for v in velocities]
    if efforts is not None:
        msg.effort = [float(v) for v in efforts]
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def joint_positions_from_msg(msg: JointState) -> dict[str, float]:
    """name -> position of a JointState (ConversionError when the arrays do not match)."""
    if len(msg.name) != len(msg.position):
        raise ConversionError(f"joint_states: {len(msg.name)} names, {len(msg.position)} positions")
    return {n: float(p) for n, p in zip(msg.name, msg.position)}


# ---------------------------------------------------------------------------- scenes
def box_to_msg(box: OrientedBox | None) -> f2p_msg.OrientedBox:
    """An OrientedBox as its message (None: all zeros, identity orientation)."""
    out = f2p_msg.OrientedBox()
    if box is None:       # an object with no points has no box: all zeros (identity orientation)
        return out
    out.center = Pose()
    out.center.position.x, out.center.position.y, out.center.position.z = (float(v) for v in box.center)
    o = out.center.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in box.orientation)
    out.size = Vector3(x=float(box.size[0]), y=float(box.size[1]), z=float(box.size[2]))
    return out


def box_from_msg(msg: f2p_msg.OrientedBox, n_points: int = 1, where: str = "box") -> OrientedBox | None:
    """The OrientedBox of a message (None for the all-zero box of an object with no points)."""
    p, o, s = msg.center.position, msg.center.orientation, msg.size
    values = [p.x, p.y, p.z, o.x, o.y, o.z, o.w, s.x, s.y, s.z]
    if n_points == 0 and values == [0.0] * 6 + [1.0] + [0.0] * 3:
        return None
    try:
        return OrientedBox(np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w]), np.array([s.x, s.y, s.z]))
    except ValueError as e:
        raise ConversionError(f"{where}: {e}") from None


def scene_to_msg(scene: SegmentedScene) -> f2p_msg.SegmentedScene:
    """A SegmentedScene dataclass as its message (every cloud carries the scene's header)."""
    out = f2p_msg.SegmentedScene()
    out.header.frame_id, out.header.stamp = scene.frame_id, ns_to_stamp(scene.stamp_ns)
    out.source = scene.source
    for obj in scene.objects:
        m = f2p_msg.SegmentedObject(id=obj.id, label=obj.label, score=obj.score)
        m.cloud = xyz_to_cloud(obj.points, obj.colors, frame_id=scene.frame_id, stamp=out.header.stamp,
                               allow_empty=True)
        m.box = box_to_msg(obj.box)
        out.objects.append(m)
    return out


def scene_from_msg(msg: f2p_msg.SegmentedScene) -> SegmentedScene:
    """The dataclass of a SegmentedScene message; ConversionError / PointCloudError naming the
    object at fault (duplicate ids, unknown labels, NaN points, a bad box)."""
    objects = []
    for i, m in enumerate(msg.objects):
        where = f"objects[{i}] ({m.id!r})"
        try:
            points, colors = cloud_to_arrays(m.cloud, allow_empty=True)
        except PointCloudError as e:
            raise PointCloudError(f"{where}: {e}") from None
        try:
            objects.append(SegmentedObject(m.id, m.label, points, float(m.score),
                                           box_from_msg(m.box, len(points), where), colors))
        except ValueError as e:
            raise ConversionError(f"{where}: {e}") from None
    try:
        return SegmentedScene(objects, msg.header.frame_id, stamp_to_ns(msg.header.stamp), msg.source)
    except ValueError as e:
        raise ConversionError(str(e)) from None


# ---------------------------------------------------------------------------- relations
def relations_to_msg(state: RelationState) -> f2p_msg.RelationState:
    """Every known relation of ``state`` as a Relation (unknown = NaN ones are left out; no
    relation between an object and itself is listed)."""
    out = f2p_msg.RelationState(object_ids=list(state.object_ids))
    out.header.frame_id, out.header.stamp = state.frame_id, ns_to_stamp(state.stamp_ns)
    ids = state.object_ids
    rel = out.relations
    for i, subj in enumerate(ids):
        for k, pred in enumerate(UNARY_RELATIONS):
            p = state.unary[i, k]
            if not np.isnan(p):
                rel.append(f2p_msg.Relation(predicate=pred, subject_id=subj, object_id="", probability=float(p)))
    for i, subj in enumerate(ids):
        for j, obj in enumerate(ids):
            if i == j:
                continue
            for k, pred in enumerate(BINARY_RELATIONS):
                p = state.binary[i, j, k]
                if not np.isnan(p):
                    rel.append(f2p_msg.Relation(predicate=pred, subject_id=subj, object_id=obj, probability=float(p)))
    return out


def _index(ids: dict[str, int], object_id: str, where: str) -> int:
    if object_id not in ids:
        raise ConversionError(f"{where}: unknown object id {object_id!r}; known: {sorted(ids)}")
    return ids[object_id]


def relations_from_msg(msg: f2p_msg.RelationState) -> RelationState:
    """The dense state of a RelationState message: relations it does not list are NaN
    (unknown). ConversionError for unknown predicates or ids, a relation listed twice, or a
    probability outside [0, 1]."""
    ids = list(msg.object_ids)
    index = {o: i for i, o in enumerate(ids)}
    if len(index) != len(ids):
        raise ConversionError(f"duplicate object ids in {ids}")
    n = len(ids)
    unary = np.full((n, len(UNARY_RELATIONS)), np.nan, np.float32)
    binary = np.full((n, n, len(BINARY_RELATIONS)), np.nan, np.float32)
    binary[np.arange(n), np.arange(n)] = 0.0
    seen = set()
    for r, m in enumerate(msg.relations):
        where = f"relations[{r}] {m.predicate}({m.subject_id}, {m.object_id})"
        pred, subj, obj = literal_from_msg(m, index, where)
        p = float(m.probability)
        if not 0.0 <= p <= 1.0:
            raise ConversionError(f"{where}: probability {p} is outside [0, 1]")
        if (pred, subj, obj) in seen:
            raise ConversionError(f"{where}: listed twice")
        seen.add((pred, subj, obj))
        if obj is None:
            unary[subj, UNARY_RELATIONS.index(pred)] = p
        else:
            binary[subj, obj, BINARY_RELATIONS.index(pred)] = p
    return RelationState(ids, unary, binary, msg.header.frame_id, stamp_to_ns(msg.header.stamp))


def literal_to_msg(literal: GoalLiteral, object_ids: Sequence[str], probability: float = 1.0) -> f2p_msg.Relation:
    """A literal (predicate, subject index, object index or None) as a Relation over ids."""
    pred, subj, obj = literal[0], literal[1], literal[2]
    return f2p_msg.Relation(predicate=pred, subject_id=object_ids[subj],
                            object_id="" if obj is None else object_ids[obj], probability=float(probability))


def literal_from_msg(msg: f2p_msg.Relation, object_ids, where: str = "relation") -> GoalLiteral:
    """(predicate, subject index, object index or None) of a Relation; ``object_ids``: the ids
    in index order (a sequence, or a dict id -> index)."""
    index = object_ids if isinstance(object_ids, dict) else {o: i for i, o in enumerate(object_ids)}
    try:
        return ground_literal(msg.predicate, msg.subject_id, msg.object_id, index, where)
    except ValueError as e:
        raise ConversionError(str(e)) from None


# ---------------------------------------------------------------------------- skills and plans
def skill_call_to_msg(call: SkillCall) -> f2p_msg.SkillCall:
    return f2p_msg.SkillCall(skill=call.skill, target_ids=list(call.target_ids), parameters=list(call.parameters))


def skill_call_from_msg(msg: f2p_msg.SkillCall) -> SkillCall:
    """The dataclass of a SkillCall message; ConversionError for an unknown skill, a wrong number
    of targets or parameters outside the skill's box."""
    try:
        return SkillCall(msg.skill, tuple(msg.target_ids), tuple(float(p) for p in msg.parameters))
    except ValueError as e:
        raise ConversionError(f"skill call: {e}") from None


def expected_motion_to_msg(object_id: str, displacement, frame_id: str, stamp_ns: int = 0) -> f2p_msg.ExpectedMotion:
    d = np.asarray(displacement, float).reshape(3)
    msg = f2p_msg.ExpectedMotion(object_id=str(object_id), displacement=Vector3(x=float(d[0]), y=float(d[1]), z=float(d[2])))
    msg.header.frame_id, msg.header.stamp = frame_id, ns_to_stamp(stamp_ns)
    return msg


def expected_motion_from_msg(msg: f2p_msg.ExpectedMotion) -> tuple[str, np.ndarray, str]:
    """(object id, displacement (3,), frame id); ValueError for no id or a non-finite displacement."""
    d = np.array([msg.displacement.x, msg.displacement.y, msg.displacement.z], float)
    if not msg.object_id or not np.isfinite(d).all():
        raise ValueError(f"expected motion needs an object id and a finite displacement, got {msg.object_id!r}, {d}")
    return msg.object_id, d, msg.header.frame_id


def plan_to_msg(plan: Plan) -> f2p_msg.Plan:
    """A plan as its message; ``plan.object_ids`` must name every object of its relations."""
    ids = list(plan.object_ids)
    n = plan.step_relations[0]["unary"].shape[0] if plan.step_relations else len(ids)
    if len(ids) != n or len(set(ids)) != n:
        raise ConversionError(f"the plan needs {n} unique object_ids to be sent, has {ids}")
    out = f2p_msg.Plan(plan_id=plan.plan_id, object_ids=ids, success_probability=float(plan.goal_probability),
                       model_version=plan.model_version, evaluated_samples=int(plan.evaluated_samples))
    out.header.frame_id, out.header.stamp = plan.frame_id, ns_to_stamp(plan.stamp_ns)
    out.goal = [literal_to_msg(lit, ids) for lit in plan.goal]
    for (name, target), params, rel in zip(plan.skeleton, plan.parameters, plan.step_relations):
        step = f2p_msg.PlanStep(skill=skill_call_to_msg(SkillCall(name, (ids[target],), tuple(params))))
        step.predicted_relations = relations_to_msg(RelationState(ids, rel["unary"], rel["binary"], plan.frame_id,
                                                                  plan.stamp_ns))
        out.steps.append(step)
    out.timing = [f2p_msg.Metric(name=k, value=float(v)) for k, v in plan.timing.items()]
    return out


def plan_from_msg(msg: f2p_msg.Plan) -> Plan:
    """The dataclass of a Plan message (ConversionError naming the step or literal at fault)."""
    ids = list(msg.object_ids)
    index = {o: i for i, o in enumerate(ids)}
    if len(index) != len(ids):
        raise ConversionError(f"duplicate object ids in {ids}")
    skeleton, parameters, relations = [], [], []
    for k, step in enumerate(msg.steps):
        call = skill_call_from_msg(step.skill)
        skeleton.append((call.skill, _index(index, call.target_ids[0], f"steps[{k}].skill")))
        parameters.append(list(call.parameters))
        rel = relations_from_msg(step.predicted_relations)
        if rel.object_ids != ids:
            raise ConversionError(f"steps[{k}].predicted_relations range over {rel.object_ids}, the plan over {ids}")
        relations.append({"unary": rel.unary, "binary": rel.binary})
    goal = [literal_from_msg(m, index, f"goal[{g}]") for g, m in enumerate(msg.goal)]
    return Plan(skeleton, parameters, relations, float(msg.success_probability), goal, ids, msg.plan_id,
                msg.model_version, msg.header.frame_id, stamp_to_ns(msg.header.stamp),
                {m.name: float(m.value) for m in msg.timing}, int(msg.evaluated_samples))


# ---------------------------------------------------------------------------- models
def model_info_to_msg(info: ModelInfo) -> f2p_msg.ModelInfo:
    return f2p_msg.ModelInfo(name=info.name, version=info.version, parent_version=info.parent_version,
                             sha256=info.sha256, signature=info.signature, uri=info.uri,
                             created=ns_to_stamp(info.created_ns),
                             metrics=[f2p_msg.Metric(name=k, value=float(v)) for k, v in info.metrics.items()])


def progress_from_msg(msg: f2p_msg.TaskProgress) -> StepProgress:
    """The executor's :class:`~f2p_common.interfaces.StepProgress` (its stage by name)."""
    return StepProgress(stage_from_msg(f2p_msg.TaskProgress, msg.stage), msg.plan_id, int(msg.step_index), msg.goal_id,
                        msg.status, bool(msg.success), msg.model_version)


def model_info_from_msg(msg: f2p_msg.ModelInfo) -> ModelInfo:
    return ModelInfo(msg.name, msg.version, msg.parent_version, msg.sha256, msg.signature, msg.uri,
                     stamp_to_ns(msg.created), {m.name: float(m.value) for m in msg.metrics})


def model_chunk_to_response(chunk: ModelChunk, resp):
    """Fill a ``FetchModel`` response with ``chunk`` (success, no error)."""
    resp.success, resp.error_code, resp.message = True, resp.ERROR_NONE, ""
    resp.model, resp.size, resp.offset = model_info_to_msg(chunk.info), chunk.size, chunk.offset
    resp.data, resp.chunk_sha256 = chunk.data, chunk.chunk_sha256
    return resp


def model_chunk_from_response(resp) -> ModelChunk:
    """The chunk a successful ``FetchModel`` response carries."""
    return ModelChunk(model_info_from_msg(resp.model), int(resp.size), int(resp.offset), bytes(resp.data),
                      resp.chunk_sha256)


def command_auth_to_msg(cmd: SignedCommand) -> f2p_msg.CommandAuth:
    """A signed command's authorisation (its command, robot and model are the request's own)."""
    return f2p_msg.CommandAuth(key_id=cmd.key_id, stamp=ns_to_stamp(cmd.stamp_ns), nonce=cmd.nonce,
                               signature=cmd.signature)


def command_auth_from_msg(msg: f2p_msg.CommandAuth, command: str, robot: str, model_sha256: str = "") -> SignedCommand:
    """The signed command a request's ``auth`` claims to be: ``command`` on ``robot`` installing
    ``model_sha256`` (what the request asks; the signature must cover exactly that)."""
    return SignedCommand(command, robot, model_sha256, stamp_to_ns(msg.stamp), msg.nonce, msg.key_id, msg.signature)


# ---------------------------------------------------------------------------- failure events
def _event_scene(event: FailureEvent, clouds: list[np.ndarray]) -> SegmentedScene:
    objects = [SegmentedObject(sid, label, cloud) for sid, label, cloud in
               zip(event.segment_ids, event.segment_labels, clouds)]
    return SegmentedScene(objects, event.frame_id, event.stamp_ns, "failure_event")


def failure_event_to_msg(event: FailureEvent) -> f2p_msg.FailureEvent:
    """A (valid) failure event as its message."""
    event.validate()
    ids = event.segment_ids
    out = f2p_msg.FailureEvent(event_id=event.event_id, robot_id=event.robot_id, plan_id=event.plan_id,
                               step_index=int(event.step_index), category=CATEGORIES.index(event.category),
                               model_version=event.model_version,
                               context_json=json.dumps(event.context, sort_keys=True, allow_nan=False))
    out.header.frame_id, out.header.stamp = event.frame_id, ns_to_stamp(event.stamp_ns)
    out.observation_before = scene_to_msg(_event_scene(event, event.observation_before))
    if event.observation_after:
        out.observation_after = scene_to_msg(_event_scene(event, event.observation_after))
    state = lambda u, b: relations_to_msg(RelationState(ids, u, b, event.frame_id, event.stamp_ns))  # noqa: E731
    out.relations_before = state(event.relations_before_unary, event.relations_before_binary)
    out.predicted_after = state(event.predicted_after_unary, event.predicted_after_binary)
    out.observed_after = state(event.observed_after_unary, event.observed_after_binary)
    out.skill = skill_call_to_msg(SkillCall(event.skill, (ids[event.target],), tuple(event.params)))
    out.mismatches = [literal_to_msg((m["predicate"], m["subject"], m["object"]), ids, m["predicted"])
                      for m in event.mismatches]
    return out


def _observed(state: RelationState, where: str) -> tuple[np.ndarray, np.ndarray]:
    """0/1 relations of an observed state as bool arrays (every relation must be listed)."""
    for name, arr in (("unary", state.unary), ("binary", state.binary)):
        if np.isnan(arr).any():
            raise ConversionError(f"{where}: an observed state must list every relation; {name} ones are missing")
        if not np.isin(arr, (0.0, 1.0)).all():
            raise ConversionError(f"{where}: observed relations must have probability 0 or 1")
    return state.unary > 0.5, state.binary > 0.5


def failure_event_from_msg(msg: f2p_msg.FailureEvent, max_segments: int = 64,
                           max_bytes: int = 64 * 2 ** 20) -> FailureEvent:
    """The FailureEvent of a message; ConversionError, PointCloudError or FailureEventError
    naming what is malformed (the event is validated). An event of more than ``max_segments``
    segments or ``max_bytes`` of clouds is refused before anything is converted (issue 43: a
    200 MB event took 1 GB of memory before it was refused)."""
    scenes = (msg.observation_before, msg.observation_after)
    segments = len(msg.observation_before.objects)
    size = sum(len(o.cloud.data) for scene in scenes for o in scene.objects)
    if segments > max_segments or size > max_bytes:
        raise ConversionError(f"the event is too large: {segments} segments (at most {max_segments}), "
                              f"{size / 2 ** 20:.1f} MiB of clouds (at most {max_bytes / 2 ** 20:.0f} MiB)")
    before = scene_from_msg(msg.observation_before)
    ids = before.object_ids
    after = scene_from_msg(msg.observation_after)
    if after.objects and after.object_ids != ids:
        raise ConversionError(f"observation_after has objects {after.object_ids}, observation_before {ids}")
    states = {}
    for name in ("relations_before", "predicted_after", "observed_after"):
        st = relations_from_msg(getattr(msg, name))
        if st.object_ids != ids:
            raise ConversionError(f"{name} ranges over {st.object_ids}, observation_before over {ids}")
        states[name] = st
    if np.isnan(states["predicted_after"].unary).any() or np.isnan(states["predicted_after"].binary).any():
        raise ConversionError("predicted_after must list every relation")
    rb_u, rb_b = _observed(states["relations_before"], "relations_before")
    ob_u, ob_b = _observed(states["observed_after"], "observed_after")
    call = skill_call_from_msg(msg.skill)
    index = {o: i for i, o in enumerate(ids)}
    mismatches = []
    for n, m in enumerate(msg.mismatches):
        pred, subj, obj = literal_from_msg(m, index, f"mismatches[{n}]")
        seen = ob_u[subj, UNARY_RELATIONS.index(pred)] if obj is None else ob_b[subj, obj, BINARY_RELATIONS.index(pred)]
        mismatches.append({"predicate": pred, "subject": subj, "object": obj, "predicted": float(m.probability),
                           "observed": bool(seen)})
    if msg.category >= len(CATEGORIES):
        raise ConversionError(f"category {msg.category} is not one of the CATEGORY_* constants (0..{len(CATEGORIES) - 1})")
    try:
        context = json.loads(msg.context_json) if msg.context_json else {}
    except json.JSONDecodeError as e:
        raise ConversionError(f"context_json is not JSON: {e}") from None
    event = FailureEvent(
        event_id=msg.event_id, robot_id=msg.robot_id, plan_id=msg.plan_id, step_index=int(msg.step_index),
        model_version=msg.model_version, segment_ids=ids, segment_labels=before.labels,
        observation_before=before.clouds, relations_before_unary=rb_u, relations_before_binary=rb_b,
        skill=call.skill, target=_index(index, call.target_ids[0], "skill"), params=list(call.parameters),
        predicted_after_unary=states["predicted_after"].unary, predicted_after_binary=states["predicted_after"].binary,
        observed_after_unary=ob_u, observed_after_binary=ob_b, observation_after=after.clouds,
        mismatches=mismatches, category=CATEGORIES[msg.category], frame_id=msg.header.frame_id,
        stamp_ns=stamp_to_ns(msg.header.stamp), context=context)
    event.validate()
    return event


# ---------------------------------------------------------------------------- pictures
_MARKER_TYPES = {"box": Marker.CUBE, "lines": Marker.LINE_LIST, "arrow": Marker.ARROW, "text": Marker.TEXT_VIEW_FACING}
_SHAPE_KINDS = {v: k for k, v in _MARKER_TYPES.items()}


def shapes_to_msg(shapes: Sequence[Shape], stamp_ns: int = 0) -> MarkerArray:
    """A MarkerArray that replaces everything shown before: a DELETEALL, then one marker per shape."""
    out = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
    for s in shapes:
        m = Marker(ns=s.namespace, id=int(s.index), type=_MARKER_TYPES[s.kind], action=Marker.ADD, text=s.text,
                   frame_locked=False)
        m.header.frame_id, m.header.stamp = s.frame_id, ns_to_stamp(stamp_ns)
        m.pose = Pose()
        (m.pose.position.x, m.pose.position.y, m.pose.position.z) = (float(v) for v in s.center)
        (m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
         m.pose.orientation.w) = (float(v) for v in s.orientation)
        m.scale = Vector3(x=s.scale[0], y=s.scale[1], z=s.scale[2])
        m.color = ColorRGBA(r=s.color[0], g=s.color[1], b=s.color[2], a=s.color[3])
        m.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in s.points]
        out.markers.append(m)
    return out


def shapes_from_msg(msg: MarkerArray) -> list[Shape]:
    """The shapes of a MarkerArray made by :func:`shapes_to_msg` (DELETE / DELETEALL markers skipped)."""
    out = []
    for n, m in enumerate(msg.markers):
        if m.action != Marker.ADD:
            continue
        if m.type not in _SHAPE_KINDS:
            raise ConversionError(f"markers[{n}]: type {m.type} is not one f2p draws ({sorted(_SHAPE_KINDS)})")
        p, q = m.pose.position, m.pose.orientation
        try:
            out.append(Shape(_SHAPE_KINDS[m.type], m.ns, m.id, (m.color.r, m.color.g, m.color.b, m.color.a),
                             (m.scale.x, m.scale.y, m.scale.z), center=[p.x, p.y, p.z], orientation=[q.x, q.y, q.z, q.w],
                             points=[[v.x, v.y, v.z] for v in m.points], text=m.text, frame_id=m.header.frame_id))
        except ValueError as exc:
            raise ConversionError(f"markers[{n}]: {exc}") from None
    return out


# ---------------------------------------------------------------------------- camera images
def image_to_msg(image: np.ndarray, frame_id: str, stamp_ns: int = 0) -> Image:
    """(H, W, 3) uint8 RGB -> ``rgb8``; (H, W) float32 depth in metres -> ``32FC1`` (REP-118)."""
    a = np.ascontiguousarray(image)
    if a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8:
        encoding, step = "rgb8", 3 * a.shape[1]
    elif a.ndim == 2 and a.dtype == np.float32:
        a = a.astype("<f4", copy=False)
        encoding, step = "32FC1", 4 * a.shape[1]
    else:
        raise ConversionError(f"an image is (H, W, 3) uint8 RGB or (H, W) float32 depth, got {a.dtype} {a.shape}")
    msg = Image(height=a.shape[0], width=a.shape[1], encoding=encoding, is_bigendian=0, step=step)
    msg.header.frame_id, msg.header.stamp = frame_id, ns_to_stamp(stamp_ns)
    msg.data = a.tobytes()
    return msg


def image_from_msg(msg: Image) -> np.ndarray:
    """``rgb8`` / ``bgr8`` -> (H, W, 3) uint8 RGB; ``32FC1`` (m) / ``16UC1`` (mm) -> (H, W) float32 m."""
    kinds = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "32FC1": (np.float32, 1), "16UC1": (np.uint16, 1)}
    if msg.encoding not in kinds:
        raise ConversionError(f"image encoding {msg.encoding!r} is not one of {sorted(kinds)}")
    dtype, channels = kinds[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    if msg.step < msg.width * channels * itemsize or len(msg.data) != msg.step * msg.height:
        raise ConversionError(f"image of {msg.width}x{msg.height} {msg.encoding}: step {msg.step} and "
                              f"{len(msg.data)} bytes do not fit")
    order = ">" if msg.is_bigendian else "<"
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width * channels * itemsize]
    a = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order) if itemsize > 1 else dtype)
    a = a.reshape(msg.height, msg.width, channels) if channels == 3 else a.reshape(msg.height, msg.width)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(a[..., ::-1])
    if msg.encoding == "16UC1":
        return (a.astype(np.float32) / 1000.0).astype(np.float32)
    return a.astype(dtype, copy=False)


def camera_info_to_msg(width: int, height: int, intrinsics, frame_id: str, stamp_ns: int = 0) -> CameraInfo:
    """A pinhole camera without distortion: ``intrinsics`` (fx, fy, cx, cy) in pixels."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    msg = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob", d=[0.0] * 5,
                     k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0], r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                     p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    msg.header.frame_id, msg.header.stamp = frame_id, ns_to_stamp(stamp_ns)
    return msg


def camera_info_from_msg(msg: CameraInfo) -> tuple[int, int, tuple[float, float, float, float]]:
    """(width, height, (fx, fy, cx, cy)) of a CameraInfo (its K matrix)."""
    k = list(msg.k)
    if len(k) != 9 or k[0] <= 0 or k[4] <= 0:
        raise ConversionError(f"camera_info K {k} is no pinhole camera matrix")
    return int(msg.width), int(msg.height), (float(k[0]), float(k[4]), float(k[2]), float(k[5]))
