"""The ``convex`` segmentation backend: class-agnostic objects as locally convex connected surface patches.

For a plain depth camera, model-free: an object is whatever surface the camera sees bounded by
concave creases (where it meets the table, the box it stands on or the box beside it), so an
object of no catalogue is still an object. The surface-patch-then-merge scheme of the OSD
authors (Richtsfeld et al., IROS 2012) with the merge criterion of LCCP (Stein et al., "Object
partitioning using local convexity", CVPR 2014), on a voxel grid of the cloud in the robot's base
frame (REP-103: z up):

1. **Supports**: the support surfaces (tables, shelves; the floor below ``floor_height`` dropped)
   of the geometric backend (:meth:`f2p_perception.geometric.GeometricSegmenter.find_supports`,
   on its 1 cm grid) but the tops of boxes standing on them (:meth:`ConvexSegmenter.raised_tops`);
   their points are no object's.
2. **Normals and flatness** of the other points, one per ``voxel_size`` voxel: the covariance of
   the voxels within ``normal_radius`` (PCA, Rusu 2009 §4.3); the normal is its least eigenvector,
   turned toward the camera (the frame's ``camera_pose``: the viewpoint), the *surface variation*
   λ0 / (λ0 + λ1 + λ2) says how far the neighbourhood is from a plane (0 flat; an edge or a
   corner ~0.1 and more).
3. **Smooth patches**: connected components of voxels whose neighbours' normals differ by less
   than ``patch_angle_deg``, flat ones (surface variation below ``max_surface_variation``: the
   faces of a box, the side of a can) apart from the others (edges, corners); patches of fewer
   than 5 voxels join the nearest patch.
4. **Merging**: two adjacent patches are one object when most (``convex_vote``) of the voxel
   pairs across their border are convex — LCCP's criterion (n_i − n_j)·(x_i − x_j) > 0 — or smooth
   (normals within ``smooth_angle_deg``). A box's faces meet at convex edges and merge; a box
   standing on another, or pushed against it, meets it at a concave crease and stays apart. A
   majority of the border decides, so a few noisy voxel pairs never join two objects. A strip
   less than ``strip_width`` across left over along an edge joins the object it lines.
5. **Furniture and containers**: pieces under a support's top within its footprint are its own
   (legs, the slab's edge: :meth:`ConvexSegmenter.furniture`); an open container's floor and
   walls, which meet at concave creases, are joined (:func:`container_pieces`).
6. **Objects**: merged components of at least ``min_voxels`` voxels, with every point of their
   voxels; gravity-aligned boxes (:func:`~f2p_perception.segmentation.yaw_box`, down to the
   surface they stand on). **Classes** come from a separate, replaceable step: the geometric
   backend's size rule (:func:`f2p_perception.geometric.classify`; an object far from every
   class of the catalogue keeps the nearest with a low score).

What it cannot do: an object's faces flush with another's (two boxes of one size stacked edge to
edge) are one smooth patch, so one object; per-pixel depth noise of several mm at 5 mm voxels
(the simulator's sensor noise model) makes normals too noisy to tell creases, where the geometric
backend holds up better (``benchmarks/results/perception.md``). Plain numpy + scipy + open3d, no
ROS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from f2p_common.interfaces import PointCloudError, SegmentedObject, finite_rows
from f2p_perception.geometric import (GeometricConfig, GeometricSegmenter, classify, merge_wall_fragments, split_container,
                                      voxel_downsample)
from f2p_perception.segmentation import Segmenter, SensorFrame, yaw_box


@dataclass
class ConvexConfig:
    """Module docstring; lengths in m. ``supports``: the geometric backend's settings for step 1
    (its ``floor_height`` is the node's ``floor_height``)."""

    voxel_size: float = 0.005
    normal_radius: float = 0.015
    max_neighbours: int = 40
    max_surface_variation: float = 0.05
    patch_angle_deg: float = 10.0
    smooth_angle_deg: float = 12.0
    convex_vote: float = 0.65
    min_voxels: int = 40
    strip_width: float = 0.025
    min_points: int = 10
    max_raised_top_area: float = 0.1
    containers: bool = True
    supports: GeometricConfig = field(default_factory=GeometricConfig)

    def __post_init__(self):
        for name in ("voxel_size", "normal_radius"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.convex_vote <= 1.0:
            raise ValueError(f"convex_vote must be in [0, 1], got {self.convex_vote}")
        if self.min_voxels < 1 or self.min_points < 1:
            raise ValueError("min_voxels and min_points must be >= 1")


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def normals_and_variation(vox: np.ndarray, viewpoint: np.ndarray, radius: float,
                          max_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit normals (N, 3) turned toward ``viewpoint``, surface variation (N,)) of the voxel
    centres ``vox`` from their neighbourhoods of ``radius`` (step 2)."""
    import open3d as o3d
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(vox))
    cloud.estimate_covariances(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=max_neighbours))
    values, vectors = np.linalg.eigh(np.asarray(cloud.covariances))
    normals = vectors[:, :, 0]
    away = ((viewpoint - vox) * normals).sum(axis=1) < 0
    normals[away] *= -1.0
    variation = values[:, 0] / np.maximum(values.sum(axis=1), 1e-18)
    return normals, variation


def convex_objects(vox: np.ndarray, normals: np.ndarray, variation: np.ndarray, cfg: ConvexConfig) -> np.ndarray:
    """Object labels 0.. of the voxel centres ``vox`` (steps 3-4; -1 for a component of fewer
    than ``min_voxels`` voxels)."""
    from scipy.spatial import cKDTree
    n = len(vox)
    if n == 0:
        return np.zeros(0, np.int64)
    tree = cKDTree(vox)
    pairs = tree.query_pairs(1.8 * cfg.voxel_size, output_type="ndarray")   # the 26-neighbourhood
    i, j = pairs[:, 0], pairs[:, 1]
    offset = vox[i] - vox[j]
    offset /= np.linalg.norm(offset, axis=1, keepdims=True)
    convexity = ((normals[i] - normals[j]) * offset).sum(axis=1)
    cos_angle = (normals[i] * normals[j]).sum(axis=1)
    # 3. smooth patches of flat voxels; edges and corners to the nearest patch
    flat = variation < cfg.max_surface_variation
    joined = (flat[i] == flat[j]) & (cos_angle > math.cos(math.radians(cfg.patch_angle_deg)))
    patch = _components(n, i[joined], j[joined])
    seeded = np.bincount(patch)[patch] >= 5
    if seeded.any() and not seeded.all():
        _, nearest = cKDTree(vox[seeded]).query(vox[~seeded])
        patch[~seeded] = patch[seeded][nearest]
    # 4. merge adjacent patches whose border is mostly convex or smooth (LCCP)
    across = patch[i] != patch[j]
    lo, hi = np.minimum(patch[i], patch[j])[across], np.maximum(patch[i], patch[j])[across]
    good = (convexity > 0) | (cos_angle > math.cos(math.radians(cfg.smooth_angle_deg)))
    span = int(patch.max()) + 1
    borders, border = np.unique(lo.astype(np.int64) * span + hi, return_inverse=True)
    share = np.bincount(border, weights=good[across].astype(np.float64)) / np.bincount(border)
    merge = share >= cfg.convex_vote
    labels = _components(span, borders[merge] // span, borders[merge] % span)[patch]
    # a strip along an edge that no face took (a couple of voxels across, its normals between
    # the faces') joins the object it lines
    labels = merge_wall_fragments(vox, labels, cfg.strip_width / 2.5, 2 * cfg.voxel_size)
    sizes = np.bincount(labels)
    kept = np.flatnonzero(sizes >= cfg.min_voxels)
    remap = np.full(len(sizes), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    return remap[labels]


def container_pieces(pts: np.ndarray, pieces: np.ndarray, band_width: float, min_depth: float = 0.03,
                     min_floor: float = 0.25, min_sectors: int = 9) -> list[int]:
    """The pieces (labels in ``pieces``, one per point of ``pts``: one Euclidean cluster) of an
    open container, or [] when there is none: a *floor* — a piece off the cluster's
    gravity-aligned box's sides (``band_width``), covering ``min_floor`` of its footprint, its
    median ``min_depth`` or more below the cluster's top — and *walls*: points within
    ``band_width`` of the box's sides, ``min_depth`` or more above the floor, all around it (in
    ``min_sectors`` of 12 sectors). A bin, a bag, a bowl, a mug; never a solid box (no floor
    below its top) nor a box on another (the lower box's top has no walls rising around it)."""
    from f2p_perception.geometric import _local_xy
    if len(pts) < 10:
        return []
    box = yaw_box(pts)
    half = 0.5 * np.asarray(box.size[:2])
    if min(half) < 2 * band_width:
        return []
    local = _local_xy(pts, box)
    band = np.min(half - np.abs(local), axis=1) < band_width
    top = float(np.quantile(pts[:, 2], 0.98))
    area = float(box.size[0] * box.size[1])
    floor, floor_height = None, 0.0
    for p in np.unique(pieces[pieces >= 0]):
        mine = pieces == p
        if band[mine].mean() > 0.5:
            continue
        h = float(np.median(pts[mine, 2]))
        if h > top - min_depth:
            continue
        footprint = np.ptp(local[mine, 0]) * np.ptp(local[mine, 1])
        if footprint >= min_floor * area and (floor is None or footprint > floor[1]):
            floor, floor_height = (p, footprint), h
    if floor is None:
        return []
    wall = band & (pts[:, 2] > floor_height + min_depth)
    if wall.sum() < 10:
        return []
    angle = np.arctan2(local[wall, 1] / half[1], local[wall, 0] / half[0])
    if len(np.unique(np.floor((angle + math.pi) / (2 * math.pi) * 12).astype(int) % 12)) < min_sectors:
        return []
    walls = [int(p) for p in np.unique(pieces[wall & (pieces >= 0)]) if (wall & (pieces == p)).sum() >= 0.5 * (pieces == p).sum()]
    return [int(floor[0])] + [p for p in walls if p != floor[0]]


class ConvexSegmenter(Segmenter):
    """The ``convex`` backend (module docstring)."""

    name = "convex"
    needs = ("cloud",)

    def __init__(self, min_points: int = 10, config: ConvexConfig | None = None):
        if min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {min_points}")
        self.cfg = config or ConvexConfig()
        self.cfg.min_points = min_points
        self._geometric = GeometricSegmenter(min_points, self.cfg.supports)

    def segment(self, frame: SensorFrame) -> list[SegmentedObject]:
        c, sc = self.cfg, self.cfg.supports
        if frame.camera_pose is None:
            raise PointCloudError("the convex backend needs the camera's viewpoint: publish the cloud in the "
                                  "camera's frame (tf, camera_pose_topic or camera_pose places it) or an RGB-D frame")
        cloud = frame.cloud
        finite = finite_rows(cloud.points)
        above = np.zeros(len(finite), bool)
        above[finite] = cloud.points[finite, 2] >= sc.floor_height
        if above.sum() < c.min_points:
            raise PointCloudError(f"the cloud has {int(above.sum())} finite points above floor_height "
                                  f"({sc.floor_height:g} m in {cloud.frame_id or 'its frame'}); the convex backend "
                                  f"needs at least {c.min_points}")
        keep = np.flatnonzero(above)
        points = cloud.points[keep].astype(np.float64)
        floor_xy = cloud.points[finite & ~above][:, :2]
        self._geometric.check_floor_cut(cloud.points[finite & ~above][:, 2], cloud.frame_id)
        # 1. supports, on the geometric backend's grid
        coarse, of_coarse, _ = voxel_downsample(points, sc.voxel_size)
        supports = self.raised_tops(self._geometric.find_supports(coarse, floor_xy))
        if not supports:
            raise self._geometric.no_support(coarse, cloud.frame_id)
        support_of = np.full(len(coarse), -1, np.int64)
        for k, s in enumerate(supports):
            support_of[s.points] = k
        point_support = support_of[of_coarse]
        # 2-4. the rest on the fine grid
        rest = np.flatnonzero(point_support < 0)
        fine, of_fine, _ = voxel_downsample(points[rest], c.voxel_size) if len(rest) else (np.zeros((0, 3)), rest, None)
        viewpoint = np.asarray(frame.camera_pose[:3], np.float64)
        if len(fine):
            normals, variation = normals_and_variation(fine, viewpoint, c.normal_radius, c.max_neighbours)
            labels = convex_objects(fine, normals, variation, c)
        else:
            labels = np.zeros(0, np.int64)
        if len(fine) and c.containers:
            labels = self.join_containers(fine, labels, supports)
        point_object = np.full(len(points), -1, np.int64)
        point_object[rest] = labels[of_fine] if len(rest) else -1
        for j, k in self.furniture(fine, labels, supports).items():    # legs, aprons: their support's
            moved = point_object == j
            point_support[moved], point_object[moved] = k, -1
        return self._segments(cloud, keep, points, point_support, point_object, supports)

    def furniture(self, vox: np.ndarray, labels: np.ndarray, supports: list) -> dict[int, int]:
        """{object label: support index} for the pieces that are a support's own: below its top
        (their 95th-percentile height, so depth noise does not lift them) and four fifths or more
        within its footprint — its legs, its slab's edge, a shelf's base."""
        sc = self.cfg.supports
        out = {}
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(int(labels.max(initial=-1)) + 2))
        for j in range(len(bounds) - 1):
            pts = vox[order[bounds[j]:bounds[j + 1]]]
            if not len(pts):
                continue
            top = float(np.quantile(pts[:, 2], 0.95))
            for k, s in enumerate(supports):
                if top <= s.height + sc.plane_threshold and self._geometric.under(s, pts, 2 * sc.voxel_size).mean() > 0.8:
                    out[j] = k
                    break
        return out

    def join_containers(self, vox: np.ndarray, labels: np.ndarray, supports: list) -> np.ndarray:
        """``labels`` with each open container whole: in a Euclidean cluster of the object voxels
        (``cluster_eps``), the pieces of an open container (:func:`container_pieces`: a floor with
        walls rising above it around its perimeter), which meet at concave creases, joined into one
        object; what it holds keeps its own pieces."""
        from f2p_perception.segmentation import grid_clusters
        sc = self.cfg.supports
        clusters = grid_clusters(vox, sc.cluster_eps, self.cfg.min_voxels)
        labels = labels.copy()
        for k in range(int(clusters.max(initial=-1)) + 1):
            members = np.flatnonzero(clusters == k)
            own = container_pieces(vox[members], labels[members], sc.voxel_size)
            if len(own) > 1:
                labels[np.isin(labels, own)] = own[0]
        return np.unique(labels, return_inverse=True)[1].reshape(-1) - (labels < 0).any()

    def raised_tops(self, supports: list) -> list:
        """``supports`` without the tops of objects: a horizontal patch smaller than
        ``max_raised_top_area`` lying (nine tenths of it) over a larger, lower support is the top of
        a box standing there (its points go to step 2), not furniture. A shelf's boards, larger,
        stay supports."""
        sc = self.cfg.supports
        area = [float(s.box.size[0] * s.box.size[1]) for s in supports]
        kept = []
        for k, s in enumerate(supports):
            raised = area[k] < self.cfg.max_raised_top_area and any(
                o is not s and o.height < s.height - sc.plane_threshold and area[m] > area[k]
                and self._geometric.under(o, s.box.center[None], 0.0).all()
                for m, o in enumerate(supports))
            if not raised:
                kept.append(s)
        return kept

    def _segments(self, cloud, keep, points, point_support, point_object, supports) -> list[SegmentedObject]:
        c = self.cfg
        colors = None if cloud.colors is None else cloud.colors[keep]
        out: list[SegmentedObject] = []

        def add(label: str, sel: np.ndarray, box, score: float) -> None:
            out.append(SegmentedObject(f"{label}_{len(out)}", label, points[sel].astype(np.float32), score, box,
                                       None if colors is None else colors[sel]))
        for k, s in enumerate(supports):
            sel = np.flatnonzero(point_support == k)
            if len(sel) >= c.min_points:
                add("shelf" if s.wall else "table", sel, yaw_box(points[sel]), 1.0)
        order = np.argsort(point_object, kind="stable")
        bounds = np.searchsorted(point_object[order], np.arange(int(point_object.max(initial=-1)) + 2))
        for j in range(len(bounds) - 1):
            sel = order[bounds[j]:bounds[j + 1]]
            if len(sel) < c.min_points:
                continue
            pts = points[sel]
            base = max((s.height for s in supports if self._geometric.under(s, pts.mean(0, keepdims=True), 0.0).all()
                        and s.height <= pts[:, 2].min() + c.supports.voxel_size), default=float(pts[:, 2].min()))
            box = self._geometric.standing(yaw_box(pts), pts, base)
            hollow = split_container(pts, box, base, c.supports.voxel_size) is not None
            label, score = classify(box, hollow, c.supports.size_priors)
            add(label, sel, box, score)
        return out
