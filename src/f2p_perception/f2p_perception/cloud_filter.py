"""Workspace crop and voxel down-sampling of a camera cloud: the first perception stage.

Plain numpy/open3d, no ROS. Segmentation and the skill-effect model only need points on
and around the workspace, at a bounded density; open3d does the crop and the voxel grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from f2p_common.interfaces import PointCloudError


@dataclass(frozen=True)
class CloudFilterConfig:
    """crop_min/crop_max: axis-aligned workspace box in the cloud's frame (metres);
    voxel_size: voxel edge for down-sampling (metres, 0 disables);
    min_points: fewer points left than this is an error (the view missed the workspace)."""

    crop_min: tuple[float, float, float] = (-2.0, -2.0, -0.5)
    crop_max: tuple[float, float, float] = (2.0, 2.0, 2.0)
    voxel_size: float = 0.01
    min_points: int = 50

    def __post_init__(self):
        lo, hi = np.asarray(self.crop_min, float), np.asarray(self.crop_max, float)
        if lo.shape != (3,) or hi.shape != (3,):
            raise ValueError("crop_min and crop_max must have 3 elements (x, y, z)")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo < hi).all()):
            raise ValueError(f"crop box must be finite with crop_min < crop_max, got {lo} .. {hi}")
        if not (np.isfinite(self.voxel_size) and self.voxel_size >= 0):
            raise ValueError(f"voxel_size must be >= 0, got {self.voxel_size}")
        if self.min_points < 0:
            raise ValueError(f"min_points must be >= 0, got {self.min_points}")


def filter_points(xyz: np.ndarray, cfg: CloudFilterConfig) -> np.ndarray:
    """Crop an (N, 3) finite cloud to the workspace and voxel-down-sample it; (M, 3) float32.

    Raises PointCloudError when fewer than cfg.min_points points remain.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise PointCloudError(f"points must have shape (N, 3), got {xyz.shape}")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    pcd = pcd.crop(o3d.geometry.AxisAlignedBoundingBox(np.asarray(cfg.crop_min, float),
                                                       np.asarray(cfg.crop_max, float)))
    if cfg.voxel_size > 0 and len(pcd.points):
        pcd = pcd.voxel_down_sample(cfg.voxel_size)
    out = np.asarray(pcd.points, dtype=np.float32)
    if len(out) < cfg.min_points:
        raise PointCloudError(
            f"only {len(out)} of {len(xyz)} points lie in the workspace box "
            f"{list(cfg.crop_min)}..{list(cfg.crop_max)} (min_points={cfg.min_points}); "
            "check the camera frame and the crop parameters")
    return out
