"""The ``convex`` backend (f2p_perception.convexity) on depth frames ray-cast in the test: boxes
that touch or stand on each other come apart at their concave creases; the Euclidean clustering
the textbook pipeline uses cannot part them. Bad frames are refused with why."""
import numpy as np
import pytest

from f2p_common.interfaces import CameraCloud, PointCloudError
from f2p_perception.convexity import ConvexConfig, ConvexSegmenter
from f2p_perception.segmentation import SEGMENTERS, SensorFrame, depth_to_cloud, grid_clusters, rgbd_frame
from support.raycast import TABLE, box, intrinsics, render

def frame_of(boxes, scale=0.5, **kw):
    depth, inst, pose = render(boxes, scale=scale, **kw)
    return rgbd_frame(None, depth, intrinsics(scale), pose, "base_link", "camera_color_optical_frame"), inst


def objects(found):
    return [o for o in found if o.label not in ("table", "shelf")]


STACKED = [box((0.9, 0.0, 0.80), (0.24, 0.16, 0.10)), box((0.9, 0.0, 0.89), (0.12, 0.10, 0.08))]
SIDE_BY_SIDE = [box((0.9, -0.06, 0.81), (0.10, 0.12, 0.12)), box((0.9, 0.06, 0.79), (0.14, 0.12, 0.08))]


def match(found, inst, frame):
    """Each true box's best point IoU with a found object, by pixel."""
    index = {p: i for i, p in enumerate(map(tuple, frame.cloud.points.tolist()))}
    segs = [set(index[p] for p in map(tuple, o.points.tolist())) for o in found]
    out = []
    for k in range(1, inst.max() + 1):
        truth = set(np.flatnonzero(inst.ravel() == k).tolist())
        out.append(max((len(truth & s) / len(truth | s) for s in segs), default=0.0))
    return out


@pytest.mark.parametrize("boxes", [STACKED, SIDE_BY_SIDE], ids=["stacked", "side_by_side"])
@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_boxes_that_touch_come_apart_at_their_concave_crease(boxes, noise):
    frame, inst = frame_of(boxes, noise=noise, scale=1.0)
    found = ConvexSegmenter().segment(frame)
    assert [o.label for o in found].count("table") == 1
    objs = objects(found)
    assert len(objs) == 2, [(o.id, len(o.points)) for o in objs]
    assert min(match(objs, inst, frame)) > 0.8
    # Euclidean clusters (what DBSCAN in the textbook pipeline gives) join them: the test needs the creases
    above = frame.cloud.points[np.isfinite(frame.cloud.points).all(axis=1)]
    above = above[above[:, 2] > TABLE[2] + 0.01]
    clusters = grid_clusters(above, 0.02, 10)
    assert len(np.unique(clusters[clusters >= 0])) == 1


def test_a_box_is_one_object_with_a_standing_box_and_a_class_from_its_size():
    frame, inst = frame_of([box((0.85, 0.1, 0.80), (0.06, 0.05, 0.10))])
    (obj,) = objects(SEGMENTERS.make("convex").segment(frame))
    assert match([obj], inst, frame)[0] > 0.85                           # its lowest 8 mm: the table plane's
    assert obj.label == "cuboid" and obj.score > 0.5
    assert obj.box.center[2] == pytest.approx(0.80, abs=0.01)            # down to the table it stands on
    assert obj.box.size[2] == pytest.approx(0.10, abs=0.015)


def test_a_box_top_large_enough_for_a_support_stays_part_of_its_box():
    frame, inst = frame_of([box((0.9, 0.0, 0.85), (0.34, 0.26, 0.20))])   # top 0.088 m^2 > min_support_area
    found = ConvexSegmenter().segment(frame)
    assert [o.label for o in found].count("table") == 1
    assert len(objects(found)) == 1 and match(objects(found), inst, frame)[0] > 0.9


def test_frames_it_cannot_segment_are_refused_with_why():
    frame, _ = frame_of(STACKED)
    with pytest.raises(PointCloudError, match="viewpoint"):
        ConvexSegmenter().segment(SensorFrame(frame.cloud))
    nan = CameraCloud(np.full((100, 3), np.nan, np.float32))
    with pytest.raises(PointCloudError, match="finite points"):
        ConvexSegmenter().segment(SensorFrame(nan, camera_pose=frame.camera_pose))
    wall = np.stack(np.meshgrid(np.linspace(0, 1, 40), np.linspace(0.1, 1, 40)), -1).reshape(-1, 2)
    vertical = CameraCloud(np.column_stack([np.full(len(wall), 2.0), wall]).astype(np.float32))
    with pytest.raises(PointCloudError, match="no support surface"):
        ConvexSegmenter().segment(SensorFrame(vertical, camera_pose=frame.camera_pose))
    # the cloud still in the camera's optical frame (z forward), called base_link: said so
    depth, _, pose = render(STACKED)
    optical = depth_to_cloud(depth, intrinsics(0.5), None, "base_link")
    with pytest.raises(PointCloudError, match="tilted .* deg from horizontal: is the cloud in base_link with z up"):
        ConvexSegmenter().segment(SensorFrame(optical, camera_pose=pose))
    with pytest.raises(ValueError, match="convex_vote"):
        ConvexConfig(convex_vote=1.5)


def bin_at(cx, cy, size=(0.30, 0.24, 0.08), wall=0.01):
    """An open bin standing on the table: a floor and four walls, as boxes."""
    sx, sy, sz = size
    z0 = TABLE[2]
    return [box((cx, cy, z0 + wall / 2), (sx, sy, wall)),
            box((cx - sx / 2 + wall / 2, cy, z0 + sz / 2), (wall, sy, sz)), box((cx + sx / 2 - wall / 2, cy, z0 + sz / 2), (wall, sy, sz)),
            box((cx, cy - sy / 2 + wall / 2, z0 + sz / 2), (sx - 2 * wall, wall, sz)),
            box((cx, cy + sy / 2 - wall / 2, z0 + sz / 2), (sx - 2 * wall, wall, sz))]


def test_an_open_bin_is_one_object_and_what_it_holds_another_and_table_legs_are_the_tables():
    legs = [box((0.33, y, TABLE[2] / 2), (0.04, 0.04, TABLE[2] - 0.002)) for y in (-0.5, 0.5)]
    item = box((0.9, 0.0, TABLE[2] + 0.01 + 0.03), (0.06, 0.06, 0.06))
    frame, inst = frame_of(bin_at(0.9, 0.0) + [item] + legs, scale=1.0)      # 640x480
    found = ConvexSegmenter().segment(frame)
    objs = objects(found)
    assert len(objs) == 2, [(o.id, len(o.points)) for o in objs]
    container = max(objs, key=lambda o: len(o.points))
    assert container.label == "bin" and container.box.size[0] == pytest.approx(0.30, abs=0.02)
    assert next(o for o in objs if o is not container).label == "cuboid"
    (table,) = [o for o in found if o.label == "table"]
    assert table.points[:, 2].min() < 0.3                             # its legs are its own
