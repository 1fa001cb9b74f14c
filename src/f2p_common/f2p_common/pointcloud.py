"""The one PointCloud2 <-> numpy conversion of f2p (sensor_msgs/PointCloud2, REP-103 metres).

sensor_msgs_py is not among the PyPI ROS wheels, so the layout is decoded here with numpy
structured dtypes. Every malformed input raises `PointCloudError` naming what is wrong
(missing or non-float x/y/z, inconsistent sizes, NaN/Inf points, empty clouds) instead of
returning something silently wrong.
"""
from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

__all__ = ["PointCloudError", "cloud_to_xyz", "xyz_to_cloud"]

# PointField datatype code -> numpy scalar type (sensor_msgs/PointField constants).
_DTYPES = {
    PointField.INT8: np.int8, PointField.UINT8: np.uint8,
    PointField.INT16: np.int16, PointField.UINT16: np.uint16,
    PointField.INT32: np.int32, PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32, PointField.FLOAT64: np.float64,
}
_XYZ = ("x", "y", "z")


class PointCloudError(ValueError):
    """A point cloud that cannot be used as it is; the message says why."""


def cloud_to_xyz(msg: PointCloud2, *, nan_policy: str = "raise", allow_empty: bool = False) -> np.ndarray:
    """Decode the x/y/z fields of a PointCloud2 into an (N, 3) float32 array.

    nan_policy: "raise" (default) refuses clouds with any non-finite point; "drop" removes
    such points (organised depth-camera clouds mark missing returns with NaN).
    allow_empty: accept a cloud with no (remaining) points; by default it is an error,
    because every f2p consumer needs points.
    """
    if nan_policy not in ("raise", "drop"):
        raise ValueError(f"nan_policy must be 'raise' or 'drop', got {nan_policy!r}")
    if not isinstance(msg, PointCloud2):
        raise PointCloudError(f"expected sensor_msgs/PointCloud2, got {type(msg).__name__}")
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in _XYZ if n not in fields]
    if missing:
        raise PointCloudError(
            f"point cloud lacks field(s) {missing}; it has {sorted(fields) or 'no fields'}")
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
    for name in _XYZ:
        f = fields[name]
        end = f.offset + np.dtype(_DTYPES[f.datatype]).itemsize
        if end > step:
            raise PointCloudError(f"field {name!r} (offset {f.offset}) does not fit in point_step {step}")
    if msg.height > 1 and msg.row_step != msg.width * step:
        raise PointCloudError(
            f"row_step {msg.row_step} != width {msg.width} * point_step {step}; padded rows are not supported")
    expected = n_points * step
    data = bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray, memoryview)) else msg.data
    if len(data) != expected:
        raise PointCloudError(
            f"data holds {len(data)} bytes but width*height*point_step = {msg.width}*{msg.height}*{step} "
            f"= {expected}")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({
        "names": list(_XYZ),
        "formats": [np.dtype(_DTYPES[fields[n].datatype]).newbyteorder(order) for n in _XYZ],
        "offsets": [fields[n].offset for n in _XYZ],
        "itemsize": step if n_points else max(step, 1),
    })
    rec = np.frombuffer(data, dtype=dtype, count=n_points)
    xyz = np.stack([rec[n].astype(np.float32) for n in _XYZ], axis=-1).reshape(-1, 3)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        bad = int((~finite).sum())
        if nan_policy == "raise":
            raise PointCloudError(
                f"{bad} of {len(xyz)} points are NaN/Inf; pass nan_policy='drop' to discard them")
        xyz = xyz[finite]
    if len(xyz) == 0 and not allow_empty:
        raise PointCloudError("point cloud is empty" + (" after dropping NaN/Inf points" if n_points else ""))
    return np.ascontiguousarray(xyz)


def xyz_to_cloud(points, *, frame_id: str = "", stamp=None, allow_empty: bool = False) -> PointCloud2:
    """Encode an (N, 3) array of finite x/y/z (metres) as an unorganised float32 PointCloud2."""
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
    msg = PointCloud2()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height = 1
    msg.width = len(arr)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate(_XYZ)]
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = 12
    msg.row_step = 12 * len(arr)
    msg.is_dense = True
    msg.data = np.ascontiguousarray(arr).tobytes()
    return msg
