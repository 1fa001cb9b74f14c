"""Labelled real RGB-D frames, for scoring segmentation on what a real camera sees (issue 45).

One neutral format, whatever the source: a :class:`LabelledFrame` per ``.npz`` file — the colour
and depth images (640x480, depth in m, NaN where the sensor has no return), the intrinsics
(fx, fy, cx, cy), the optical frame's pose in a z-up base frame (REP-103, x, y, z, qx, qy, qz,
qw: what tf gives on a robot) and the truth: per-pixel ``instance`` (0 none, k > 0 an object)
and ``support`` (the table). :func:`f2p_perception.segmentation.rgbd_frame` turns one into the
perception node's input; ``benchmarks/perception_real.py`` scores every backend on a folder of
them.

**mOSD** (PointCloudLibrary/data, ``segmentation/mOSD``: the Object Segmentation Database of
Richtsfeld et al. relabelled for model-free segmentation; organised 640x480 Kinect PCDs with
fields label x y z rgba, fx = fy = 525, cx 319.5, cy 239.5). Labels: 0 no return, 1-9 the
table's parts, 10k + j part j of object k − 1; each part is its own instance (disjoint parts of
one object carry different labels, as the set's authors intend for model-free methods). The
frames come with no camera pose, so :func:`read_mosd` places the camera as a robot's tf would:
the table's plane, fitted to its labelled points, is horizontal at ``table_height`` (0.75 m, a
desk) and the camera looks along +x above the origin. Only the gravity direction and the table's
height come from the labels — what a calibrated robot knows; nothing about the objects.

``f2p-convert-frames --mosd DIR --out DIR`` converts every ``*.pcd`` of a folder (the frames stay
out of the repository). Plain numpy + open3d, no ROS.
"""
from __future__ import annotations

import argparse
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MOSD_INTRINSICS = (525.0, 525.0, 319.5, 239.5)
MOSD_SIZE = (480, 640)


@dataclass
class LabelledFrame:
    """One labelled RGB-D frame (module docstring)."""

    name: str
    rgb: np.ndarray                 # (H, W, 3) uint8
    depth: np.ndarray               # (H, W) float32 m, NaN: no return
    intrinsics: tuple[float, float, float, float]
    camera_pose: tuple[float, ...]  # the optical frame in the base frame (x, y, z, qx, qy, qz, qw)
    instance: np.ndarray            # (H, W) int32: 0 none, k > 0 object k
    support: np.ndarray             # (H, W) bool: the support surface

    def __post_init__(self):
        h, w = self.depth.shape
        if self.rgb.shape != (h, w, 3) or self.instance.shape != (h, w) or self.support.shape != (h, w):
            raise ValueError(f"{self.name}: images of different sizes (rgb {self.rgb.shape}, depth {self.depth.shape}, "
                             f"instance {self.instance.shape}, support {self.support.shape})")
        if len(self.intrinsics) != 4 or len(self.camera_pose) != 7:
            raise ValueError(f"{self.name}: intrinsics must be (fx, fy, cx, cy) and camera_pose 7 numbers")

    @property
    def objects(self) -> int:
        """The number of labelled objects in the frame."""
        return int(len(np.unique(self.instance[self.instance > 0])))

    def save(self, path: Path) -> None:
        """Write the frame as ``path`` (.npz), atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, rgb=self.rgb, depth=self.depth, intrinsics=np.asarray(self.intrinsics),
                            camera_pose=np.asarray(self.camera_pose), instance=self.instance, support=self.support)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LabelledFrame:
        """The frame saved at ``path``; ValueError naming the file when it is not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(path.stem, z["rgb"].astype(np.uint8), z["depth"].astype(np.float32),
                           tuple(float(v) for v in z["intrinsics"]), tuple(float(v) for v in z["camera_pose"]),
                           z["instance"].astype(np.int32), z["support"].astype(bool))
        except (OSError, KeyError, EOFError, ValueError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a labelled frame ({e})") from e


def load_frames(folder: Path) -> list[LabelledFrame]:
    """Every frame (``*.npz``) of ``folder``, by name; ValueError when there is none."""
    files = sorted(Path(folder).glob("*.npz"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise ValueError(f"no labelled frames (*.npz) in {folder}: convert them first (f2p-convert-frames)")
    return [LabelledFrame.load(f) for f in files]


def _quaternion(rot: np.ndarray) -> tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation
    return tuple(float(v) for v in Rotation.from_matrix(rot).as_quat())


def level_pose(points: np.ndarray, support: np.ndarray, table_height: float) -> tuple[float, ...]:
    """The camera's pose (x, y, z, qx, qy, qz, qw) in a z-up frame where the plane fitted to the
    ``support`` points (camera frame, z forward) is horizontal at ``table_height``, the camera
    above the origin looking along +x."""
    table = points[support & np.isfinite(points).all(axis=1)].astype(np.float64)
    if len(table) < 3:
        raise ValueError("no labelled support points to level the frame on")
    centre = table.mean(axis=0)
    normal = np.linalg.svd(table - centre, full_matrices=False)[2][2]
    if normal @ centre > 0:
        normal = -normal                                  # up: toward the camera
    forward = np.array([0.0, 0.0, 1.0]) - normal[2] * normal
    if np.linalg.norm(forward) < 1e-6:
        raise ValueError("the camera looks straight down on the support: no forward direction")
    forward /= np.linalg.norm(forward)
    rot = np.stack([forward, np.cross(normal, forward), normal])   # rows: the base axes in the camera's frame
    height = table_height - float(normal @ centre)
    return (0.0, 0.0, height) + _quaternion(rot)


def read_mosd(path: Path, table_height: float = 0.75) -> LabelledFrame:
    """One mOSD PCD (module docstring) as a :class:`LabelledFrame`."""
    import open3d as o3d
    path = Path(path)
    cloud = o3d.t.io.read_point_cloud(str(path), remove_nan_points=False)
    fields = set(cloud.point)
    if not {"positions", "label", "colors"} <= fields:
        raise ValueError(f"{path}: an mOSD frame has fields label x y z rgba; this one has {sorted(fields)}")
    points = cloud.point["positions"].numpy().astype(np.float32)
    if len(points) != MOSD_SIZE[0] * MOSD_SIZE[1]:
        raise ValueError(f"{path}: {len(points)} points; an mOSD frame is organised 640x480")
    label = cloud.point["label"].numpy().reshape(MOSD_SIZE).astype(np.int64)
    rgb = cloud.point["colors"].numpy().reshape(MOSD_SIZE + (3,)).astype(np.uint8)
    support = (label >= 1) & (label <= 9)
    pose = level_pose(points, support.ravel(), table_height)
    depth = points[:, 2].reshape(MOSD_SIZE).astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    instance = np.where(label >= 20, label, 0).astype(np.int32)
    frame = LabelledFrame(path.stem, rgb, depth, MOSD_INTRINSICS, pose, instance, support)
    error = check_intrinsics(frame, points)
    if error > 1e-3:
        raise ValueError(f"{path}: its points are not the depth image under mOSD's intrinsics (off by {error:.3g} m)")
    return frame


def check_intrinsics(frame: LabelledFrame, points: np.ndarray) -> float:
    """The largest distance (m) between ``points`` (the source's organised cloud, camera frame)
    and the depth image back-projected with the frame's intrinsics: ~0 when they are right."""
    fx, fy, cx, cy = frame.intrinsics
    v, u = np.mgrid[0:frame.depth.shape[0], 0:frame.depth.shape[1]]
    x = (u - cx) * frame.depth / fx
    y = (v - cy) * frame.depth / fy
    back = np.stack([x, y, frame.depth], axis=-1).reshape(-1, 3)
    ok = np.isfinite(back).all(axis=1) & np.isfinite(points).all(axis=1)
    return float(np.abs(back[ok] - points[ok]).max()) if ok.any() else math.inf


@dataclass
class ConvertConfig:
    """``source``: a folder of mOSD ``*.pcd``; ``out``: where the ``.npz`` frames go."""

    source: Path
    out: Path
    table_height: float = 0.75


@dataclass
class ConvertResult:
    frames: list[str]
    objects: int


def convert_mosd(cfg: ConvertConfig) -> ConvertResult:
    """Convert every mOSD frame of ``cfg.source`` into ``cfg.out`` (module docstring)."""
    files = sorted(Path(cfg.source).glob("*.pcd"))
    if not files:
        raise ValueError(f"no *.pcd in {cfg.source}")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    names, objects = [], 0
    for f in files:
        frame = read_mosd(f, cfg.table_height)
        frame.save(Path(cfg.out) / f"{frame.name}.npz")
        names.append(frame.name)
        objects += frame.objects
    return ConvertResult(names, objects)


def main() -> None:
    ap = argparse.ArgumentParser(description="Convert labelled real RGB-D frames into f2p's format (one .npz each).")
    ap.add_argument("--mosd", required=True, type=Path, help="a folder of mOSD PCDs (e.g. segmentation/mOSD/learn)")
    ap.add_argument("--out", required=True, type=Path, help="the folder the .npz frames go to")
    ap.add_argument("--table-height", type=float, default=0.75, help="the table's height in the base frame (m)")
    a = ap.parse_args()
    result = convert_mosd(ConvertConfig(a.mosd, a.out, a.table_height))
    print(f"[f2p-convert-frames] {len(result.frames)} frames, {result.objects} objects -> {a.out}")


if __name__ == "__main__":
    main()
