"""Labelled real frames (f2p_datasets.real_frames): an mOSD PCD (organised 640x480, fields label
x y z rgba) becomes a frame levelled on its table; bad files are refused with why; the real-frame
benchmark's scoring counts what it should."""
import sys
from pathlib import Path

import numpy as np
import pytest

from f2p_datasets.real_frames import ConvertConfig, LabelledFrame, convert_mosd, load_frames, read_mosd
from f2p_perception.segmentation import rgbd_frame
from support.raycast import box, intrinsics, render

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import perception_real  # noqa: E402

BOXES = [box((0.9, -0.1, 0.80), (0.10, 0.08, 0.10)), box((0.95, 0.15, 0.78), (0.12, 0.12, 0.06))]


def write_pcd(path: Path, shift_x: float = 0.0, fields=("label", "colors")) -> np.ndarray:
    """An mOSD-style PCD of two boxes on a table, in the camera's frame (z forward): labels 1 the
    table, 20 and 30 the boxes. Returns the true per-pixel labels."""
    import open3d as o3d
    depth, inst, _ = render(BOXES, scale=1.0)
    fx, fy, cx, cy = intrinsics(1.0)
    v, u = np.mgrid[0:480, 0:640]
    pts = np.stack([(u - cx) * depth / fx + shift_x, (v - cy) * depth / fy, depth], -1).reshape(-1, 3)
    label = np.where(np.isfinite(depth), np.where(inst > 0, 10 * (inst + 1), 1), 0).reshape(-1, 1).astype(np.uint32)
    cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(pts.astype(np.float32)))
    if "label" in fields:
        cloud.point["label"] = o3d.core.Tensor(label)
    if "colors" in fields:
        cloud.point["colors"] = o3d.core.Tensor(np.full((len(pts), 3), 128, np.uint8))
    assert o3d.t.io.write_point_cloud(str(path), cloud, write_ascii=False, compressed=True)
    return label.reshape(480, 640)


def test_an_mosd_frame_is_levelled_on_its_table_with_its_objects(tmp_path):
    label = write_pcd(tmp_path / "learn7.pcd")
    frame = read_mosd(tmp_path / "learn7.pcd", table_height=0.75)
    assert frame.objects == 2 and (frame.support == (label == 1)).all()
    assert sorted(np.unique(frame.instance).tolist()) == [0, 20, 30]
    cloud = rgbd_frame(frame.rgb, frame.depth, frame.intrinsics, frame.camera_pose, "base_link").cloud.points
    table = cloud[frame.support.ravel()]
    assert np.abs(table[:, 2] - 0.75).max() < 1e-3                    # level, at the table's height
    tops = cloud[(frame.instance == 20).ravel(), 2]
    assert tops.max() == pytest.approx(0.85, abs=2e-3)                  # the box rises 10 cm above it
    result = convert_mosd(ConvertConfig(tmp_path, tmp_path / "out"))
    assert result.frames == ["learn7"] and result.objects == 2
    (back,) = load_frames(tmp_path / "out")
    assert back.name == "learn7" and np.array_equal(back.instance, frame.instance)
    assert np.allclose(back.camera_pose, frame.camera_pose)
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_files_that_are_not_mosd_frames_are_refused_with_why(tmp_path):
    write_pcd(tmp_path / "shifted.pcd", shift_x=0.01)          # not the depth image under 525 / 319.5
    with pytest.raises(ValueError, match="intrinsics"):
        read_mosd(tmp_path / "shifted.pcd")
    write_pcd(tmp_path / "plain.pcd", fields=("colors",))
    with pytest.raises(ValueError, match="fields label x y z rgba"):
        read_mosd(tmp_path / "plain.pcd")
    (tmp_path / "npz").mkdir()
    with pytest.raises(ValueError, match="no labelled frames"):
        load_frames(tmp_path / "npz")
    (tmp_path / "npz" / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="broken.npz: not a labelled frame"):
        load_frames(tmp_path / "npz")
    with pytest.raises(ValueError, match="different sizes"):
        LabelledFrame("x", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.float32), (1, 1, 1, 1),
                      (0,) * 7, np.zeros((4, 5), np.int32), np.zeros((4, 5), bool))


def test_the_benchmark_scores_a_frame_and_runs_the_baseline_beside_each_backend(tmp_path):
    instance = np.zeros((2, 5), np.int32)
    instance[0, :4], instance[1, :3] = 20, 30               # objects of 4 and 3 pixels (below 10: left out)
    assert perception_real.score(instance, [])["true"] == 0
    instance = np.repeat(instance, 10, axis=1)               # 40 and 30 pixels
    truth = instance.ravel()
    exact, half = np.flatnonzero(truth == 20), np.flatnonzero(truth == 30)[:12]
    r = perception_real.score(instance, [exact, half, np.array([0])])
    assert (r["true"], r["segments"], r["matched"], r["matched_segments"]) == (2, 3, 1, 1)
    assert r["ious"] == pytest.approx([1.0, 0.4])
    write_pcd(tmp_path / "learn0.pcd")
    convert_mosd(ConvertConfig(tmp_path, tmp_path / "out"))
    out = perception_real.run(load_frames(tmp_path / "out"), ["convex"], say=lambda *_: None)
    assert set(out) == {"open3d", "convex"}
    assert out["open3d"]["all"]["objects"] == 2 and out["open3d"]["all"]["recall"] == 1.0
    assert out["convex"]["all"]["recall"] == 1.0 and out["convex"]["all"]["precision"] == 1.0
    assert out["convex"]["by_size"]["1-2"]["frames"] == 1 and out["convex"]["rate_hz"] > 0
