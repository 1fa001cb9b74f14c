"""PointCloud2 <-> numpy: exact round trip, and a clear error for every malformed input."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField

from f2p_ros.conversions import PointCloudError, cloud_to_xyz, xyz_to_cloud


def _points(n=100, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 3)).astype(np.float32)


def test_round_trip_is_exact():
    pts = _points()
    msg = xyz_to_cloud(pts, frame_id="base_link")
    assert msg.header.frame_id == "base_link" and msg.width == 100 and msg.height == 1
    np.testing.assert_array_equal(cloud_to_xyz(msg), pts)


def test_decodes_float64_big_endian_with_extra_fields():
    # x, y, z as big-endian float64 behind an rgb field: layouts real drivers produce.
    pts = _points(7).astype(np.float64)
    dtype = np.dtype([("rgb", ">f4"), ("x", ">f8"), ("y", ">f8"), ("z", ">f8")])
    rec = np.zeros(7, dtype)
    rec["x"], rec["y"], rec["z"] = pts.T
    msg = PointCloud2(height=1, width=7, point_step=dtype.itemsize, row_step=7 * dtype.itemsize,
                      is_bigendian=True, data=rec.tobytes())
    msg.fields = [PointField(name="rgb", offset=0, datatype=PointField.FLOAT32, count=1)] + [
        PointField(name=n, offset=4 + 8 * i, datatype=PointField.FLOAT64, count=1)
        for i, n in enumerate("xyz")]
    np.testing.assert_allclose(cloud_to_xyz(msg), pts.astype(np.float32))


def test_missing_field_is_named():
    msg = xyz_to_cloud(_points())
    msg.fields = [f for f in msg.fields if f.name != "z"]
    with pytest.raises(PointCloudError, match=r"lacks field\(s\) \['z'\]"):
        cloud_to_xyz(msg)


def test_integer_xyz_is_refused():
    msg = xyz_to_cloud(_points())
    msg.fields[0].datatype = PointField.INT32
    with pytest.raises(PointCloudError, match="must be FLOAT32"):
        cloud_to_xyz(msg)


def test_truncated_data_is_refused():
    msg = xyz_to_cloud(_points())
    msg.data = bytes(msg.data)[:-5]
    with pytest.raises(PointCloudError, match="data holds 1195 bytes"):
        cloud_to_xyz(msg)


def test_field_outside_point_step_is_refused():
    msg = xyz_to_cloud(_points())
    msg.fields[2].offset = 12
    with pytest.raises(PointCloudError, match="does not fit in point_step"):
        cloud_to_xyz(msg)


def test_nan_points_raise_by_default_and_drop_on_request():
    pts = _points(10)
    pts[3] = np.nan
    pts[7, 1] = np.inf
    msg = xyz_to_cloud(pts[[0, 1]])
    # Encode NaNs by hand: xyz_to_cloud itself refuses them (tested below).
    msg.width, msg.row_step, msg.data = 10, 120, pts.tobytes()
    with pytest.raises(PointCloudError, match="2 of 10 points are NaN/Inf"):
        cloud_to_xyz(msg)
    kept = cloud_to_xyz(msg, nan_policy="drop")
    np.testing.assert_array_equal(kept, np.delete(pts, [3, 7], axis=0))


def test_all_nan_cloud_is_empty_after_drop():
    pts = np.full((4, 3), np.nan, np.float32)
    msg = xyz_to_cloud(_points(4))
    msg.data = pts.tobytes()
    with pytest.raises(PointCloudError, match="empty after dropping"):
        cloud_to_xyz(msg, nan_policy="drop")


def test_empty_cloud():
    with pytest.raises(PointCloudError, match="lacks field"):
        cloud_to_xyz(PointCloud2())  # a default message has no fields at all
    with pytest.raises(PointCloudError, match="point cloud is empty"):
        cloud_to_xyz(xyz_to_cloud(np.zeros((0, 3)), allow_empty=True))
    assert cloud_to_xyz(xyz_to_cloud(np.zeros((0, 3)), allow_empty=True), allow_empty=True).shape == (0, 3)
    with pytest.raises(PointCloudError, match="refusing to encode an empty"):
        xyz_to_cloud(np.zeros((0, 3)))


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((5, 2)), r"shape \(N, 3\)"),
    (np.zeros(3), r"shape \(N, 3\)"),
    (np.array([[0, 0, np.nan]]), "NaN/Inf"),
    (np.array([["a", "b", "c"]]), "numeric"),
])
def test_encoding_refuses_bad_arrays(bad, pattern):
    with pytest.raises(PointCloudError, match=pattern):
        xyz_to_cloud(bad)


def test_wrong_message_type_and_policy():
    with pytest.raises(PointCloudError, match="expected sensor_msgs/PointCloud2"):
        cloud_to_xyz("not a cloud")
    with pytest.raises(ValueError, match="nan_policy"):
        cloud_to_xyz(xyz_to_cloud(_points()), nan_policy="ignore")
