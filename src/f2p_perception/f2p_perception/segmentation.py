"""Segmentation: one camera frame to per-object clouds (paper 000 §3: O_t = {O^0_t, ..., O^n_t}).

Every backend implements :class:`Segmenter`: ``segment(SensorFrame) -> list[SegmentedObject]``
(id, class label, score, points, oriented box, colours), objects in a stable order. A
:class:`SensorFrame` carries the synchronised camera data a backend may need: the cloud always,
and the RGB and depth images with the camera's intrinsics when an RGB-D driver gives them
(``Segmenter.needs`` says which a backend uses), so image-based backends (YOLO-seg, SAM) and
geometric ones plug in behind the same node. Backends (:data:`SEGMENTERS`):

``labelled_cloud``  the cloud carries a segmenting camera's per-point ``instance`` and ``label``
                    fields (the simulated robot's camera does): points are grouped by instance,
                    the class is the label the instance's points carry, the id is
                    ``instance_object_id(label, instance)``.
``geometric``       a plain depth camera's cloud: support surfaces by RANSAC, the objects on
                    them by clustering, classes by shape and size (:mod:`f2p_perception.geometric`).

Plain numpy, no ROS.
"""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass

import numpy as np

from f2p_common.interfaces import (NO_OBJECT, CameraCloud, OrientedBox, PointCloudError, SegmentedObject,
                                   instance_object_id)
from f2p_common.vocabulary import OBJECT_CLASSES


@dataclass
class SensorFrame:
    """One camera frame: ``cloud`` and, from an RGB-D driver, ``rgb`` (H, W, 3) uint8, ``depth``
    (H, W) float32 m and ``intrinsics`` (fx, fy, cx, cy) in pixels."""

    cloud: CameraCloud
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    intrinsics: tuple[float, float, float, float] | None = None


class Segmenter(abc.ABC):
    """A segmentation backend."""

    name: str = ""
    #: The parts of a SensorFrame it reads, of "cloud", "rgb", "depth", "intrinsics".
    needs: tuple[str, ...] = ("cloud",)
    #: Whether an object keeps its id from frame to frame by itself (else the node tracks it:
    #: :class:`f2p_perception.tracking.SegmentTracker`).
    stable_ids: bool = False

    @abc.abstractmethod
    def segment(self, frame: SensorFrame) -> list[SegmentedObject]:
        """The objects of ``frame`` (in the cloud's frame); PointCloudError when the frame cannot
        be segmented by this backend (the message says why)."""


class LabelledCloudSegmenter(Segmenter):
    """Group a segmenting camera's cloud by its ``instance`` field (module docstring). Instances
    with fewer than ``min_points`` finite points are left out (a sliver at the image border is no
    object to plan with)."""

    name = "labelled_cloud"
    stable_ids = True                     # the camera's instance numbers

    def __init__(self, min_points: int = 10):
        if min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {min_points}")
        self.min_points = min_points

    def segment(self, frame: SensorFrame) -> list[SegmentedObject]:
        cloud = frame.cloud
        if cloud.instance is None or cloud.label is None:
            raise PointCloudError("the labelled_cloud backend needs a cloud with 'instance' and 'label' fields "
                                  "(a segmenting camera's); use an RGB-D backend for a plain depth camera")
        finite = np.isfinite(cloud.points).all(axis=1)
        inst, label = cloud.instance[finite], cloud.label[finite]
        points = cloud.points[finite]
        colors = None if cloud.colors is None else cloud.colors[finite]
        objects = []
        for k in np.unique(inst[inst != NO_OBJECT]):
            sel = inst == k
            if sel.sum() < self.min_points:
                continue
            labels = np.unique(label[sel])
            if len(labels) != 1 or labels[0] == NO_OBJECT:
                raise PointCloudError(f"instance {int(k)} carries labels {labels.tolist()}; one class per instance")
            cls = OBJECT_CLASSES[int(labels[0])]
            pts = points[sel]
            objects.append(SegmentedObject(instance_object_id(cls, int(k)), cls, pts, 1.0, OrientedBox.around(pts),
                                           None if colors is None else colors[sel]))
        return objects


def limit_points(objects: list[SegmentedObject], max_points: int) -> list[SegmentedObject]:
    """Each object with at most ``max_points`` points: an even stride through its points (in
    the camera's raster order, so the partial view stays spread over the surface); its box is
    kept from all points. A 640x480 camera's table has ~10^5 points; what plans and learns from
    a scene needs a few thousand, and a scene of 10^5-point objects costs 10-40 ms of Python
    per message to convert and publish."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    out = []
    for o in objects:
        if len(o.points) <= max_points:
            out.append(o)
            continue
        keep = np.linspace(0, len(o.points) - 1, max_points).round().astype(np.int64)
        out.append(SegmentedObject(o.id, o.label, o.points[keep], o.score, o.box,
                                   None if o.colors is None else o.colors[keep]))
    return out


#: Segmentation backends by name (the perception node's ``backend`` parameter): where each
#: class lives, imported only when chosen (open3d, torch models are heavy imports).
SEGMENTERS: dict[str, str] = {"labelled_cloud": "f2p_perception.segmentation:LabelledCloudSegmenter",
                              "geometric": "f2p_perception.geometric:GeometricSegmenter"}


def make_segmenter(name: str, **options) -> Segmenter:
    """The backend ``name`` built with ``options``; ValueError naming the known ones."""
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmentation backend {name!r}; known: {', '.join(SEGMENTERS)}")
    module, cls = SEGMENTERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def transform_cloud(cloud: CameraCloud, pose, frame_id: str) -> CameraCloud:
    """``cloud`` expressed in ``frame_id``, given ``pose``: the cloud frame's pose in ``frame_id``
    as (x, y, z, qx, qy, qz, qw) (the camera's extrinsics when no tf is published)."""
    p = np.asarray(pose, np.float64).reshape(-1)
    if p.shape != (7,) or not np.isfinite(p).all() or abs(np.linalg.norm(p[3:]) - 1.0) > 1e-6:
        raise ValueError(f"a pose is (x, y, z, qx, qy, qz, qw) with a unit quaternion, got {list(p)}")
    x, y, z, w = p[3:]
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    pts = (cloud.points.astype(np.float64) @ rot.T + p[:3]).astype(np.float32)
    return CameraCloud(pts, cloud.colors, cloud.instance, cloud.label, frame_id, cloud.stamp_ns, cloud.height)
