"""The ``geometric`` segmentation backend: support surfaces and the objects on them, from the cloud alone.

For a plain depth camera (no per-point labels), in the robot's base frame (REP-103: z up):

1. **Floor and voxel grid**: points below ``floor_height`` (in the base frame: the floor's
   height plus a margin; a Stretch's base_link is on the floor, a UR5's on its mount) are the
   floor, dropped — two thirds of a 640x480 frame of a room. The geometry is computed from an
   even stride of at most ``max_input_points`` of the cloud's finite points (the floor's
   dropped from it), one point per voxel (``voxel_size``); every point above the floor in an
   occupied voxel keeps it, so segments come back with those points.
2. **Support surfaces**: heights where many points lie (peaks of the height histogram of the
   points no plane has taken yet, most points first, redone after each plane) are candidates;
   open3d RANSAC (``segment_plane``) fits each one's plane among the points near that height; a
   plane within ``max_tilt_deg`` of horizontal is split into connected patches, each patch
   grows over the free points connected to it that lie on its own least-squares plane (a real
   table is 2 m across: a degree of tilt lifts its far end out of the pool), and a patch
   of at least ``min_support_area`` with walls on at most two of its sides
   (:func:`side_walls`) is a support surface — any size and height (a table, a shelf's
   board, a counter). Smaller horizontal
   patches (a box's top), walled ones (a bin's floor), ones a quarter or more of which lies
   less than ``min_support_rise`` above a larger support (boxes packed side by side, a bin's
   rim or floor, also where it hangs over the table's edge) and tilted planes stay object
   points.
3. **Objects** (Euclidean clusters, ``cluster_eps``): the points that are neither floor nor support
   are clustered; a wall's thin fragments join their container, and clusters whose footprints
   overlap are one (a container seen at a grazing angle: its near walls, and its floor with
   the far wall). A wall lining a whole side of a support surface (a shelf's back) and a
   cluster under it (its legs, a shelf's base; judged by its 95th-percentile height, so that
   depth noise does not lift it) are part of that support; clusters of fewer than
   ``min_voxels`` voxels are noise; the others are objects.
4. **Boxes**: each segment's oriented box turns about +z only (REP-103 gravity-aligned; the
   yaw of its points' principal axis in the horizontal plane).
5. **Classes** by a geometric rule (:func:`classify`): supports are ``table`` or, with a wall,
   ``shelf``; an object is a container (``bin``, ``bag``, ``cup``: an open top, points inside
   its rim below it) or solid (``cuboid``), and among its kind the class whose size range
   (:data:`SIZE_PRIORS`, the object catalogue) is nearest to its box. The score says how well
   the box fits that range.

Anything the rule cannot support raises :class:`~f2p_common.interfaces.PointCloudError` with
why (no finite point, no support surface, a ``floor_height`` that cuts a table away with the
floor): the node reports it and publishes nothing rather
than wrong segments. Plain numpy + open3d, no ROS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from f2p_common.interfaces import OrientedBox, PointCloudError, SegmentedObject, finite_rows
from f2p_perception.segmentation import Segmenter, SensorFrame, grid_clusters as _clusters, yaw_box

#: Size ranges (x, y, z extents, m; x >= y) of each class's objects: the catalogue the rule
#: matches boxes against (the simulator's object classes in both its layouts, paper 000's and
#: real_scale, f2p_sim's world.yaml; a robot's own catalogue replaces it).
SIZE_PRIORS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "bin": ((0.22, 0.22, 0.06), (0.45, 0.38, 0.10)),
    "bag": ((0.22, 0.20, 0.10), (0.40, 0.38, 0.24)),
    "cup": ((0.07, 0.07, 0.06), (0.13, 0.13, 0.12)),
    "cuboid": ((0.03, 0.03, 0.03), (0.12, 0.12, 0.16)),
}
CONTAINERS = ("bin", "bag", "cup")


@dataclass
class GeometricConfig:
    """Module docstring; lengths in m."""

    voxel_size: float = 0.01
    max_input_points: int = 80000
    plane_threshold: float = 0.008
    max_planes: int = 8
    min_plane_points: int = 40
    max_tilt_deg: float = 10.0
    min_support_area: float = 0.03
    min_support_rise: float = 0.15
    floor_height: float = 0.05
    cluster_eps: float = 0.02
    min_points: int = 10
    min_voxels: int = 5
    size_priors: dict = field(default_factory=lambda: dict(SIZE_PRIORS))
    seed: int = 0


def _voxel_keys(points: np.ndarray, size: float) -> np.ndarray:
    """Integer voxel coordinates (float32 arithmetic: the same for a point wherever it is computed)."""
    return np.floor(points.astype(np.float32, copy=False) * np.float32(1.0 / size)).astype(np.int32)


def voxel_downsample(points: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(one point per occupied voxel: the mean of its points, each input point's voxel index, the
    grid: what :func:`voxel_index` needs to place other points in these voxels)."""
    keys = _voxel_keys(points, size)
    origin = keys.min(axis=0)
    keys = (keys - origin).astype(np.int64)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]          # one integer per voxel
    occupied, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = inverse.max() + 1
    sums = np.column_stack([np.bincount(inverse, weights=points[:, d], minlength=n) for d in range(3)])
    return sums / np.bincount(inverse, minlength=n)[:, None], inverse, (size, origin, span, occupied)


def voxel_index(points: np.ndarray, grid: tuple) -> np.ndarray:
    """The voxel of :func:`voxel_downsample`'s ``grid`` each of ``points`` falls in, -1 where none
    is occupied (a 640x480 frame's 300k points in ~15 ms)."""
    size, origin, span, occupied = grid
    k = _voxel_keys(points, size) - origin
    inside = np.ones(len(k), bool)
    for axis in range(3):                                  # 0 <= k < span, as one unsigned comparison
        inside &= k[:, axis].view(np.uint32) < span[axis]
    flat = (k[:, 0].astype(np.int64) * span[1] + k[:, 1]) * span[2] + k[:, 2]
    at = np.minimum(np.searchsorted(occupied, flat), len(occupied) - 1)
    return np.where(inside & (occupied[at] == flat), at, -1)


def _yaw(box: OrientedBox) -> float:
    """The yaw of a box turned about +z only."""
    return 2.0 * math.atan2(box.orientation[2], box.orientation[3])


def merge_wall_fragments(points: np.ndarray, labels: np.ndarray, voxel: float, reach: float,
                         smaller_than: float = math.inf) -> np.ndarray:
    """``labels`` with each thin fragment — a piece of a wall, at most 2.5 voxels across
    (where the camera's rays thin out, a container's wall falls apart from it) — joined to the
    other cluster with the most points within ``reach`` of it. A solid object is never this thin.
    Solid clusters are the first choice, fragments joined to one count as part of it (a wall in
    two pieces joins whole), and specks of one or two points only take in a fragment no solid
    cluster is near (a table leg seen as a dotted line). ``smaller_than``: only fragments whose
    every extent is below it count."""
    from scipy.spatial import cKDTree
    labels = labels.copy()
    n = labels.max() + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=n) if n else np.zeros(0, int)
    # A box's width along any axis is at least twice the points' spread along it (a range is at
    # least twice its standard deviation): a cluster whose least horizontal spread (the smaller
    # eigenvalue of its xy covariance, from per-cluster sums) exceeds 1.25 voxels cannot be thin,
    # and needs no box — most of a frame's clusters.
    xy = points[:, :2] - points[:, :2].mean(0) if len(points) else np.zeros((0, 2))
    count = np.maximum(sizes, 1)
    mean = [np.bincount(labels, xy[:, d], n) / count for d in (0, 1)]
    cxx, cyy, cxy = (np.bincount(labels, xy[:, a] * xy[:, b], n) / count - mean[a] * mean[b]
                     for a, b in ((0, 0), (1, 1), (0, 1)))
    least = 0.5 * (cxx + cyy) - np.sqrt(np.maximum(0.0, 0.25 * (cxx - cyy) ** 2 + cxy ** 2))
    maybe_thin = np.flatnonzero((sizes >= 3) & (2.0 * np.sqrt(np.maximum(least, 0.0)) <= 2.5 * voxel * (1 + 1e-9)))
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    thin = []
    for j in maybe_thin:
        size = yaw_box(points[order[starts[j]:starts[j + 1]]]).size
        if min(size[:2]) <= 2.5 * voxel and max(size) < smaller_than:
            thin.append(int(j))
    if not thin or len(thin) == n:
        return labels
    specks = [j for j in range(n) if sizes[j] < 3]
    targets = ~np.isin(labels, thin + specks)
    pending = list(thin)
    for last_resort in (False, True):
        while pending:
            if last_resort:
                targets |= np.isin(labels, specks)
            mine = np.isin(labels, pending)
            # only the targets within reach of a pending fragment's bounds can be its neighbours
            near = targets & (np.abs(points - 0.5 * (points[mine].min(0) + points[mine].max(0)))
                              <= 0.5 * np.ptp(points[mine], axis=0) + reach).all(axis=1)
            if not near.any():
                break
            tree, owner = cKDTree(points[near]), labels[near]
            still = []
            for j in pending:
                dist, nearest = tree.query(points[labels == j], k=16, distance_upper_bound=reach)
                hit = np.isfinite(dist)
                if hit.any():
                    found, votes = np.unique(owner[nearest[hit]], return_counts=True)
                    labels[labels == j] = found[np.argmax(votes)]
                else:
                    still.append(j)
            if len(still) == len(pending):
                break
            targets = ~np.isin(labels, still + specks) | (targets & last_resort)
            pending = still
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(-1)


@dataclass
class _Support:
    points: np.ndarray                # voxel indices
    height: float
    box: OrientedBox
    wall: bool = False


def classify(box: OrientedBox, hollow: bool, priors: dict) -> tuple[str, float]:
    """(class, score): the class whose size range is nearest to the box's extents (sorted
    x >= y, then z), a container class counting 3 cm farther for a solid object and a solid
    class 3 cm farther for a container; score 1 inside the range, e^(-d / 2 cm) outside."""
    ext = np.asarray(box.size, float)
    ext = np.array([max(ext[0], ext[1]), min(ext[0], ext[1]), ext[2]])
    best, best_d = None, math.inf
    for cls, (lo, hi) in priors.items():
        d = float(np.linalg.norm(np.maximum(0.0, np.asarray(lo) - ext) + np.maximum(0.0, ext - np.asarray(hi))))
        d += 0.03 * ((cls in CONTAINERS) != hollow)
        if d < best_d:
            best, best_d = cls, d
    if best is None:
        raise PointCloudError("the object catalogue (size_priors) is empty")
    return best, float(math.exp(-best_d / 0.02))


def _local_xy(points: np.ndarray, box: OrientedBox) -> np.ndarray:
    c, s = math.cos(_yaw(box)), math.sin(_yaw(box))
    return (points[:, :2] - box.center[:2]) @ np.array([[c, -s], [s, c]])


def split_container(points: np.ndarray, box: OrientedBox, base: float, voxel: float,
                    min_width: float = 0.08) -> tuple[np.ndarray, np.ndarray] | None:
    """An open container and what it holds: (the container's points, the contents' points) as
    masks, or None for a solid object. A container's walls make a band along its box's vertical
    faces that reaches from near its base to its top around most of its perimeter (seen from
    any side, the near walls' outer faces and the far walls' inner faces); what lies inside the
    band, clear of its floor, is its contents."""
    if min(box.size[0], box.size[1]) < min_width or box.size[2] < 0.04:
        return None
    local = _local_xy(points, box)
    half = 0.5 * np.asarray(box.size[:2])
    edge = np.min(half - np.abs(local), axis=1)
    band = edge < 2.0 * voxel
    if band.sum() < 10:
        return None
    sectors = np.unique(np.floor((np.arctan2(local[band, 1] / half[1], local[band, 0] / half[0]) + math.pi)
                                 / (2 * math.pi) * 12).astype(int) % 12)
    top = float(points[:, 2].max())
    tall = np.ptp(points[band, 2]) >= 0.6 * (top - base)
    if len(sectors) < 8 or not tall:
        return None
    contents = ~band & (points[:, 2] > base + 0.02) & (edge > 2.5 * voxel)
    return ~contents, contents


def part_side_by_side(points: np.ndarray, min_points: int, band: float = 0.003, max_density: float = 0.2,
                      min_separation: float = 0.025, depth: int = 3) -> list[np.ndarray]:
    """Indices of ``points`` (what a container holds, one Euclidean cluster) per item standing in
    it: items side by side a centimetre apart in a cup are one cluster under a depth camera's
    noise (the gap's edges spread into it, the floor and the sides seen through it join them),
    but their tops still thin out over the gap. The upper half of the points (the tops, above
    the walls' occlusion) is cut in two by k-means, in the horizontal plane and with heights
    weighed twice (tops at different heights); the cut stands where the points within ``band``
    of the line halfway between the two parts are fewer than ``max_density`` of the parts' own
    density along that axis and the parts' centres lie ``min_separation`` or more apart (one
    item's own top, cut in two, is as dense in the middle as anywhere). Every point goes to its
    side of that line; each side is looked at again, ``depth`` cuts deep. Measured on first
    frames of noisy 640x480 depth (20 scenes each): objects without a segment of their own,
    organize-3 / 5 / 7 12 -> 4, 21 -> 11, 20 -> 11; transport-3 / 7 0 -> 0, 2 -> 1; no item
    cut in two (``max_density`` 0.3 cut 5 of transport-7's larger items). After the learned
    model carried transport-3's container (100 scenes, items jostled and tilted): items without
    a segment 38 -> 32, pieces that are no object's 47 -> 57. A 5 mm band at 0.4 parts 46 of 59
    merged pairs (this one 27 of 48) but leaves 61 such pieces there. Through the graph on
    noisy depth: organize-5 1/15 -> 14/40, transport-3 85 -> 79 of 100 (benchmarks/README.md)."""
    from scipy.cluster.vq import kmeans2
    if depth <= 0 or len(points) < 2 * min_points:
        return [np.arange(len(points))]
    low, top = np.quantile(points[:, 2], [0.02, 0.98])
    upper = points[points[:, 2] > low + 0.5 * (top - low)]
    best = None
    for height_weight in (0.0, 2.0):
        features = np.column_stack([upper[:, :2], height_weight * upper[:, 2]])
        _, part = kmeans2(features, 2, minit="++", seed=0)
        if np.bincount(part, minlength=2).min() < min_points // 2:
            continue
        a, b = upper[part == 0, :2].mean(0), upper[part == 1, :2].mean(0)
        half = 0.5 * float(np.linalg.norm(b - a))
        if 2 * half < min_separation:
            continue
        axis = (b - a) / (2 * half)
        t = (upper[:, :2] - 0.5 * (a + b)) @ axis
        in_band = (np.abs(t) < band).sum() / (2 * band)
        beside = ((np.abs(t) >= band) & (np.abs(t) < half)).sum() / (2 * (half - band))
        density = in_band / max(beside, 1e-9)
        if density < max_density and (best is None or density < best[0]):
            best = (density, 0.5 * (a + b), axis)
    if best is None:
        return [np.arange(len(points))]
    side = (points[:, :2] - best[1]) @ best[2] >= 0
    if min(side.sum(), (~side).sum()) < min_points:
        return [np.arange(len(points))]
    out = []
    for half_mask in (~side, side):
        idx = np.flatnonzero(half_mask)
        out += [idx[sub] for sub in part_side_by_side(points[idx], min_points, band, max_density, min_separation,
                                                      depth - 1)]
    return out


def side_walls(points: np.ndarray, box: OrientedBox, height: float, voxel: float,
               coverage: float = 0.6, reach: float = 2.0, above: float = 0.02) -> list[np.ndarray]:
    """The walls rising from the sides of a horizontal patch (``box`` at ``height``): for each
    side, the points ``above``-30 cm above it within ``reach`` voxels of the side, when they line at least
    ``coverage`` of its length (a mask per walled side). A container's floor has three or four;
    a table none, a shelf's board one (its back)."""
    half = 0.5 * np.asarray(box.size[:2])
    up = np.flatnonzero((points[:, 2] > height + above) & (points[:, 2] < height + 0.3))
    up = up[(np.abs(points[up, :2] - box.center[:2]) <= np.linalg.norm(half) + 2 * voxel).all(axis=1)]
    local = _local_xy(points[up], box)
    walls = []
    for axis in (0, 1):
        along = 1 - axis
        n_bins = max(1, int(2 * half[along] / voxel))
        for sign in (-1.0, 1.0):
            near = (np.abs(local[:, axis] - sign * half[axis]) < reach * voxel) & (np.abs(local[:, along]) <= half[along])
            bins = np.unique(np.floor((local[near, along] + half[along]) / voxel).astype(int))
            if len(bins) >= coverage * n_bins:
                wall = np.zeros(len(points), bool)
                wall[up[near]] = True
                walls.append(wall)
    return walls


def cut_under_walls(vox: np.ndarray, inliers: np.ndarray, patches: np.ndarray, height: float, above: float,
                    floor_xy: np.ndarray, cell: float, min_cells: float) -> np.ndarray:
    """``patches`` (labels of the plane's ``inliers``, a plane at ``height``) with a patch cut in
    two where it holds together only through cells something stands on, over a gap: a container
    lying across the gap between two tables puts its walls' lowest centimetre in the tables'
    plane, and joins them. The cells of a patch with voxels from ``above`` to 6 cm over it are
    left out; if the rest falls apart (8-connected) into parts of at least ``min_cells`` cells,
    the two largest are separate patches when the band between them (where their extents do not
    meet, along x or y) shows a gap — a fifth of its cells with returns from 5 cm or more below
    the plane (or the floor's, ``floor_xy``) and none on it: the floor seen between two tables,
    not a row of items standing across a shelf's board. Every point goes to the nearest part
    within a cell, the others (the walls' bases) back to the object points (label -1)."""
    from scipy import ndimage
    out = patches.copy()
    sizes = np.bincount(patches[patches >= 0]) if (patches >= 0).any() else np.zeros(0, int)
    candidates = [k for k in range(len(sizes)) if sizes[k] >= 2 * min_cells * 2.5 ** 2]
    if not candidates:
        return out
    band = vox[(vox[:, 2] > above) & (vox[:, 2] <= above + 0.06), :2]
    low = np.vstack([vox[vox[:, 2] < height - 0.05, :2], floor_xy])
    next_label = len(sizes)
    for k in candidates:
        mine = np.flatnonzero(patches == k)
        keys = np.floor(vox[inliers[mine], :2] / cell).astype(np.int64)
        lo = keys.min(axis=0) - 1
        keys -= lo
        grid = np.zeros(keys.max(axis=0) + 2, bool)
        grid[keys[:, 0], keys[:, 1]] = True

        def cells(xy):
            at = np.floor(xy / cell).astype(np.int64) - lo
            at = at[((at >= 0) & (at < grid.shape)).all(axis=1)]
            mask = np.zeros_like(grid)
            mask[at[:, 0], at[:, 1]] = True
            return mask
        parts, n = ndimage.label(grid & ~cells(band), structure=np.ones((3, 3), bool))
        if n < 2:
            continue
        counts = np.bincount(parts.ravel())[1:]
        big = np.argsort(-counts)[:2] + 1
        if counts[big[1] - 1] < min_cells:
            continue
        spans = [np.argwhere(parts == b) for b in big]
        gap = cells(low) & ~grid
        seen = False
        for axis in (0, 1):                                # the band between the parts along one axis
            (a_lo, a_hi), (b_lo, b_hi) = ((s[:, axis].min(), s[:, axis].max()) for s in spans)
            start, stop = (a_hi + 1, b_lo) if a_hi < b_lo else (b_hi + 1, a_lo)
            other = 1 - axis
            o_lo = max(spans[0][:, other].min(), spans[1][:, other].min())
            o_hi = min(spans[0][:, other].max(), spans[1][:, other].max())
            if stop > start and o_hi >= o_lo:
                between = gap[start:stop, o_lo:o_hi + 1] if axis == 0 else gap[o_lo:o_hi + 1, start:stop]
                seen |= between.mean() >= 0.2
        if not seen:
            continue
        dist, (ix, iy) = ndimage.distance_transform_edt(~np.isin(parts, big), return_indices=True)
        part = parts[ix, iy][keys[:, 0], keys[:, 1]]              # each point: the nearest large part ...
        far = dist[keys[:, 0], keys[:, 1]] > 1.5                  # ... unless farther than a cell: the
        out[mine[far]] = -1                                       # wall's base, back to the object points
        out[mine[~far & (part == big[1])]] = next_label
        next_label += 1
    return out


class GeometricSegmenter(Segmenter):
    """The ``geometric`` backend (module docstring)."""

    name = "geometric"
    needs = ("cloud",)

    def __init__(self, min_points: int = 10, config: GeometricConfig | None = None):
        self.cfg = config or GeometricConfig(min_points=min_points)
        if min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {min_points}")
        self.cfg.min_points = min_points

    # --- the steps (module docstring) ----------------------------------------------------
    def find_supports(self, vox: np.ndarray, floor_xy: np.ndarray) -> list[_Support]:
        """The support surfaces (step 2 of the module docstring) of the voxel centres ``vox`` (one per
        ``voxel_size`` voxel, above the floor; ``floor_xy``: where the camera sees the floor), each
        with its voxels' indices, height, box and whether a wall lines it (a shelf)."""
        import open3d as o3d
        c = self.cfg
        o3d.utility.random.seed(c.seed)
        supports = []
        free = np.ones(len(vox), bool)
        cos_tilt = math.cos(math.radians(c.max_tilt_deg))
        # a support of min_support_area covers at least a quarter of its voxels (the rest hidden
        # behind what stands on it); smaller patches (hundreds on a large real table's edges)
        # never get a box
        min_patch = 0.25 * c.min_support_area / c.voxel_size ** 2
        # candidate heights: where many free points share a height (a horizontal surface), most
        # first, the histogram redone after each plane (two tables 2 cm apart make one peak until
        # the first is taken); RANSAC fits each one's plane among the points within 1.5
        # plane_threshold of that height only (15 RANSACs over the whole 640x480 cloud cost 0.1 s;
        # these over small pools, ms), and the plane grows over the free points connected to it
        # that lie on it (a slightly tilted table, or a camera a degree off, leaves the pool)
        z = vox[:, 2]
        tried: list[float] = []
        for _ in range(c.max_planes):
            zf = z[free]
            if len(zf) < c.min_plane_points:
                break
            counts, edges = np.histogram(zf, bins=max(1, int(np.ptp(zf) / c.plane_threshold) + 1))
            centres = 0.5 * (edges[:-1] + edges[1:])
            peaks = [i for i in range(len(counts)) if counts[i] >= c.min_plane_points
                     and counts[i] == counts[max(0, i - 2):i + 3].max()
                     and all(abs(centres[i] - t) > 0.5 * c.plane_threshold for t in tried)]
            if not peaks:
                break
            h = float(centres[max(peaks, key=lambda i: counts[i])])
            tried.append(h)
            pool = np.flatnonzero(free & (np.abs(z - h) < 1.5 * c.plane_threshold))
            if len(pool) < c.min_plane_points:
                continue
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(vox[pool]))
            plane, inliers = pc.segment_plane(distance_threshold=c.plane_threshold, ransac_n=3, num_iterations=200)
            inliers = pool[np.asarray(inliers, np.int64)]
            if len(inliers) < c.min_plane_points or abs(plane[2]) / max(1e-9, np.linalg.norm(plane[:3])) < cos_tilt:
                continue                                   # no surface here: object points
            free[inliers] = False
            patches = _clusters(vox[inliers], 2.5 * c.voxel_size, 3)
            patches = cut_under_walls(vox, inliers, patches, h, h + 1.5 * c.plane_threshold, floor_xy,
                                      2.5 * c.voxel_size,
                                      c.min_support_area / (2.5 * c.voxel_size) ** 2)
            # each patch's points in height order: its median height without a median call per
            # patch (a real table's edges leave hundreds of small ones)
            order = np.lexsort((vox[inliers, 2], patches))
            heights = vox[inliers[order], 2]
            bounds = np.searchsorted(patches[order], np.arange(patches.max() + 2 if len(patches) else 0))
            for k in range(len(bounds) - 1):
                lo, m = bounds[k], bounds[k + 1] - bounds[k]
                idx = inliers[order[lo:lo + m]]
                height = float(0.5 * (heights[lo + (m - 1) // 2] + heights[lo + m // 2]))
                if len(idx) < min_patch:
                    continue                               # a fragment: too few voxels to cover a support
                idx = self._grow(vox, idx, free)
                free[idx] = False
                box = yaw_box(vox[idx])
                if box.size[0] * box.size[1] >= c.min_support_area:
                    walls = side_walls(vox, box, height, c.voxel_size)
                    if len(walls) <= 2:
                        supports.append(_Support(idx, height, box))
                # else: a box's top, a container's floor (walls on three or four sides): an object's
        # a patch lying on larger supports, less than min_support_rise above them, is an object's
        # floor, rim or top (a bin's, boxes packed side by side), not a surface of its own — also
        # when the object hangs over a support's edge or bridges two tables: a quarter of it lies
        # over them (furniture does not stand partly over other furniture a hand's width below)
        kept: list[_Support] = []
        for cand in sorted(supports, key=lambda t: -t.box.size[0] * t.box.size[1]):
            over = np.zeros(len(cand.points), bool)
            for k in kept:
                if 0.5 * c.plane_threshold < cand.height - k.height < c.min_support_rise:   # not level with it
                    over |= self.under(k, vox[cand.points], c.voxel_size)
            if over.mean() >= 0.25:
                continue
            # a band a few cm below a larger surface's edge is its own slab's front face, flat
            # enough under a noisy sensor's depth to pass for a plane: that surface's
            host = next((k for k in kept if 0.0 < k.height - cand.height < 0.05
                         and self.under(k, vox[cand.points], 2 * c.voxel_size).mean() > 0.9), None)
            if host is not None:
                host.points = np.union1d(host.points, cand.points)
            else:
                kept.append(cand)
        # a wall lining a whole side of a surface is the furniture's own (a shelf's back wall),
        # not an object standing on it: all of it, to 3.5 voxels out and down to the surface (a
        # noisy sensor thickens it)
        for k in kept:
            walls = side_walls(vox, k.box, k.height, c.voxel_size, coverage=0.8, reach=3.5,
                               above=c.plane_threshold)
            # the side of a higher table standing next to this one (real tables differ by
            # centimetres) rises along its edge too: it lies under that table, it is no wall
            walls = [w for w in walls if not any(
                o is not k and o.height > k.height and self.under(o, vox[w], 2 * c.voxel_size).mean() > 0.5
                for o in kept)]
            if walls:
                k.wall = True
                k.points = np.union1d(k.points, np.flatnonzero(np.logical_or.reduce(walls)))
        return kept

    def _grow(self, vox: np.ndarray, idx: np.ndarray, free: np.ndarray) -> np.ndarray:
        """The patch ``idx`` with the free voxels connected to it that lie within plane_threshold
        of its own least-squares plane (z = a x + b y + c)."""
        c = self.cfg
        pts = vox[idx]
        design = np.column_stack([pts[:, 0], pts[:, 1], np.ones(len(pts))])
        coef, *_ = np.linalg.lstsq(design, pts[:, 2], rcond=None)
        cand = np.flatnonzero(free)
        cand = cand[np.abs(vox[cand, 2] - vox[cand, :2] @ coef[:2] - coef[2]) < c.plane_threshold]
        if not len(cand):
            return idx
        both = np.concatenate([idx, cand])
        labels = _clusters(vox[both], 2.5 * c.voxel_size, 1)
        mine = np.unique(labels[:len(idx)])
        return np.union1d(idx, cand[np.isin(labels[len(idx):], mine)])

    def no_support(self, vox: np.ndarray, frame_id: str) -> PointCloudError:
        """Why a cloud (voxel centres ``vox``) has no support surface: none there, or — when its
        largest plane is far from horizontal — a cloud that is not in a z-up frame (a camera's
        optical frame has z forward) or a camera pose that is wrong."""
        import open3d as o3d
        c = self.cfg
        why = (f"no support surface (a horizontal plane of at least {c.min_support_area:g} m^2 above "
               f"floor_height {c.floor_height:g} m) in the cloud")
        if len(vox) >= 3 * c.min_plane_points:
            o3d.utility.random.seed(c.seed)
            plane, inliers = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(vox)).segment_plane(
                c.plane_threshold, 3, 200)
            tilt = math.degrees(math.acos(min(1.0, abs(plane[2]) / max(1e-12, float(np.linalg.norm(plane[:3]))))))
            if len(inliers) >= 0.3 * len(vox) and tilt > c.max_tilt_deg:
                why += (f"; its largest plane ({100 * len(inliers) // len(vox)} % of it) is tilted {tilt:.0f} deg from "
                        f"horizontal: is the cloud in {frame_id or 'the base frame'} with z up (REP-103; an optical "
                        "frame has z forward), and the camera's pose right?")
        return PointCloudError(why)

    def check_floor_cut(self, z_below: np.ndarray, frame_id: str) -> None:
        """PointCloudError when the points cut away below ``floor_height`` (their heights
        ``z_below``) hold a horizontal surface ``min_support_rise`` or more above the lowest one:
        floor_height is above the floor, and a table (or a counter) went with it — what is left
        would read a bin's rim as the support. A surface is a 1 cm height band holding a tenth
        of the cut points (and at least ``min_plane_points``); the floor is the lowest one."""
        c = self.cfg
        z = z_below[np.isfinite(z_below)]
        z = z[::max(1, len(z) // c.max_input_points)]       # an even stride: heights, not detail
        if len(z) < 2 * c.min_plane_points:
            return
        levels, counts = np.unique(np.floor(z / 0.01).astype(np.int64), return_counts=True)
        surfaces = levels[counts >= max(c.min_plane_points, 0.1 * len(z))]
        if len(surfaces) >= 2 and 0.01 * (surfaces.max() - surfaces.min()) >= c.min_support_rise:
            raise PointCloudError(
                f"floor_height {c.floor_height:g} m cuts away a horizontal surface at z = {0.01 * surfaces.max():.2f} m "
                f"in {frame_id or 'the base frame'}, {0.01 * (surfaces.max() - surfaces.min()):.2f} m above the floor "
                f"at z = {0.01 * surfaces.min():.2f} m: a table would be dropped with the floor. Set floor_height to "
                "the floor's height in the base frame plus a margin (0.05 where base_link lies on the floor; below "
                "zero for an arm on a mount)")

    def under(self, s: _Support, pts: np.ndarray, margin: float) -> np.ndarray:
        """Whether each of ``pts`` lies over (or under) support ``s``'s footprint, ``margin`` beyond it."""
        c, sn = math.cos(_yaw(s.box)), math.sin(_yaw(s.box))
        local = (pts[:, :2] - s.box.center[:2]) @ np.array([[c, -sn], [sn, c]])
        return (np.abs(local) <= 0.5 * np.asarray(s.box.size[:2]) + margin).all(axis=1)

    def segment(self, frame: SensorFrame) -> list[SegmentedObject]:
        c = self.cfg
        cloud = frame.cloud
        finite = finite_rows(cloud.points)
        if finite.sum() < c.min_points:
            raise PointCloudError(f"the cloud has {int(finite.sum())} finite points; the geometric backend needs "
                                  f"at least {c.min_points}")
        keep = np.flatnonzero(finite)
        if len(keep) > c.max_input_points:                 # an even stride through the camera's points
            sample = keep[np.linspace(0, len(keep) - 1, c.max_input_points).astype(np.int64)]
        else:
            sample = keep
        above = cloud.points[:, 2] >= c.floor_height       # (NaN compares False)
        floor_xy = cloud.points[sample[~above[sample]], :2]   # where the floor shows: gaps (cut_under_walls)
        self.check_floor_cut(cloud.points[sample[~above[sample]], 2], cloud.frame_id)
        keep, sample = keep[above[keep]], sample[above[sample]]
        if len(keep) < c.min_points:
            raise PointCloudError(f"the cloud has {len(keep)} finite points above floor_height "
                                  f"({c.floor_height:g} m in {cloud.frame_id or 'its frame'}); the geometric backend "
                                  f"needs at least {c.min_points}")
        # the geometry from the sample, segments with every point of its voxels
        vox, of_point, grid = voxel_downsample(cloud.points[sample].astype(np.float64), c.voxel_size)
        if len(sample) < len(keep):
            of_point = voxel_index(cloud.points[keep], grid)
        points = cloud.points[keep]
        colors = None if cloud.colors is None else cloud.colors[keep]
        supports = self.find_supports(vox, floor_xy)
        if not supports:
            raise self.no_support(vox, cloud.frame_id)
        claimed = np.zeros(len(vox), bool)
        for s in supports:
            claimed[s.points] = True
        rest = np.flatnonzero(~claimed)
        labels = self._object_clusters(vox[rest])
        owner = np.full(len(vox), -1, np.int64)            # -1 noise, k < S support k, S + j object j
        for k, s in enumerate(supports):
            owner[s.points] = k
        objects = []
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2 if len(labels) else 0))
        for j in range(len(bounds) - 1):
            idx = rest[order[bounds[j]:bounds[j + 1]]]
            if len(idx) < c.min_voxels:                  # a speck of depth noise: nobody's
                continue
            pts = vox[idx]
            # the top and the thickness without the noisiest 5 % of voxels: a sensor's depth noise
            # lifts a few of a table's apron or a shelf's wall voxels above the surface
            low, top = (float(v) for v in np.quantile(pts[:, 2], [0.05, 0.95]))
            home = None
            flat = top - low <= 2 * c.plane_threshold
            for k, s in enumerate(supports):
                inside = self.under(s, pts, 2 * c.voxel_size).mean() > 0.8
                if inside and top <= s.height + c.plane_threshold:
                    home = k                               # under it: its legs, its base
                    break
                if flat and abs(float(np.median(pts[:, 2])) - s.height) <= c.plane_threshold and \
                        self.under(s, pts, 2 * c.cluster_eps).all():
                    home = k                               # a strip of its surface RANSAC's patch left out
                    break
            if home is not None:
                owner[idx] = home
            else:
                owner[idx] = len(supports) + len(objects)
                objects.append(idx)
        # no surface is seen through an object standing on it: surface points within an object's
        # footprint are the object's (a container's floor a few mm above the table, in the noise)
        on_support = owner < len(supports)
        for j, idx in enumerate(objects):
            box = yaw_box(vox[idx])
            if min(box.size[0], box.size[1]) < 4 * c.voxel_size:
                continue
            local = _local_xy(vox, box)
            inside = on_support & (np.abs(local) < 0.5 * np.asarray(box.size[:2]) - c.voxel_size).all(axis=1)
            inside &= vox[:, 2] >= vox[idx, 2].min() - c.plane_threshold
            owner[inside] = len(supports) + j
            objects[j] = np.concatenate([idx, np.flatnonzero(inside)])
        return self._segments(points, colors, of_point, owner, supports, objects, vox)

    def _object_clusters(self, pts: np.ndarray) -> np.ndarray:
        """Labels of the object points ``pts``: Euclidean clusters, thin wall fragments joined to
        their container (:func:`merge_wall_fragments`), and pieces of a container joined: a
        container seen at a grazing angle falls apart into its near walls and its floor with the
        far wall — two clusters whose footprints overlap (a quarter of the smaller one's or more,
        not all of it: what a container holds lies wholly within it), neither of which fits a
        class of the catalogue while together they fit a container, or a container's near wall
        apart from the rest of it (:meth:`_join_walls`). Objects side by side, or that fit their
        classes, stay apart."""
        c = self.cfg
        labels = merge_wall_fragments(pts, _clusters(pts, 0.5 * c.cluster_eps, 1), c.voxel_size, 2 * c.cluster_eps)
        sizes = np.bincount(labels)
        big = [int(j) for j in np.argsort(-sizes, kind="stable") if sizes[j] >= c.min_voxels]
        boxes = {j: yaw_box(pts[labels == j]) for j in big}
        unfit = {j: max(classify(b, True, c.size_priors)[1], classify(b, False, c.size_priors)[1]) < 0.5
                 for j, b in boxes.items()}
        reach = {j: 0.5 * float(np.linalg.norm(b.size[:2])) for j, b in boxes.items()}
        grid = (np.stack(np.meshgrid(np.linspace(-0.45, 0.45, 10), np.linspace(-0.45, 0.45, 10)), -1)
                .reshape(-1, 2))                        # a footprint's sample points, in box units
        for a, i in enumerate(big):                     # larger first
            for j in big[a + 1:]:
                if not (unfit[i] and unfit[j]) or \
                        np.linalg.norm(boxes[i].center[:2] - boxes[j].center[:2]) > reach[i] + reach[j]:
                    continue
                bj, yaw = boxes[j], _yaw(boxes[j])
                rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
                samples = np.column_stack([(grid * bj.size[:2]) @ rot.T + bj.center[:2], np.zeros(len(grid))])
                inside = (np.abs(_local_xy(samples, boxes[i])) <= 0.5 * np.asarray(boxes[i].size[:2])).all(axis=1)
                if not 0.25 <= inside.mean() < 0.9:
                    continue
                union = yaw_box(pts[(labels == i) | (labels == j)])
                if classify(union, True, c.size_priors)[1] >= 0.5:
                    labels[labels == j] = i
                    boxes[i], unfit[i], unfit[j] = union, False, False   # one container now: done
                    reach[i] = 0.5 * float(np.linalg.norm(union.size[:2]))
        self._join_walls(pts, labels, big, boxes)
        self._join_contents(pts, labels, big, boxes, grid)
        return np.unique(labels, return_inverse=True)[1].reshape(-1)

    def _join_walls(self, pts: np.ndarray, labels: np.ndarray, big: list[int], boxes: dict,
                    max_thickness: float = 0.05, min_length: float = 0.06) -> None:
        """A container's near wall standing apart from the rest of it: a cup seen from above at
        an angle shows the outside of its near wall and, past its hidden floor, the inside of
        the other walls; depth noise breaks the thin rims that join them at the corners, and the
        wall alone fits a small box as well as the rest fits a cup, so neither is unfit. A thin
        slab (at most ``max_thickness`` across, ``min_length`` or more long) is that wall when
        it lines one side of what it makes with a neighbour, its rim level with the neighbour's
        top, and the two together are an open container (a container class of the catalogue,
        walls around: :func:`split_container`). Two solid boxes side by side have no such walls.
        Measured on noisy first frames (20 scenes each): cups read as something else, organize-5
        7 -> 3 of 40, organize-7 3 -> 2 of 60; transport and packing unchanged."""
        c = self.cfg
        for i in big:
            bi = boxes.get(i)
            sel_i = labels == i
            if bi is None or not sel_i.any() or min(bi.size[:2]) > max_thickness or max(bi.size[:2]) < min_length:
                continue
            top_i = float(np.quantile(pts[sel_i, 2], 0.95))
            for j in big:
                sel_j = labels == j
                if j == i or j not in boxes or not sel_j.any() or \
                        np.linalg.norm(bi.center[:2] - boxes[j].center[:2]) > \
                        0.5 * (np.linalg.norm(bi.size[:2]) + np.linalg.norm(boxes[j].size[:2])):
                    continue
                if abs(float(np.quantile(pts[sel_j, 2], 0.95)) - top_i) > 0.02:
                    continue
                both = sel_i | sel_j
                union = yaw_box(pts[both])
                label, score = classify(union, True, c.size_priors)
                if label not in CONTAINERS or score < 0.5:
                    continue
                local = _local_xy(pts[sel_i], union)
                lining = np.min(0.5 * np.asarray(union.size[:2]) - np.abs(local), axis=1) < max_thickness
                if lining.mean() < 0.9 or split_container(pts[both], union, float(pts[both, 2].min()),
                                                          c.voxel_size) is None:
                    continue
                labels[sel_i] = j
                boxes[j] = union
                break

    def _join_contents(self, pts: np.ndarray, labels: np.ndarray, big: list[int], boxes: dict, grid: np.ndarray) -> None:
        """A cluster standing wholly inside an open container's walls, on its floor (its lowest
        point within a wall's height of the container's), is what the container holds — its
        floor and items clustered apart from its walls, as depth noise leaves them: joined to the
        container, whose split (:func:`split_container`) then parts the items from it again. Without
        this the floor-and-items blob reads as a second container where there is one."""
        c = self.cfg
        walls = {}
        for i in big:
            sel = labels == i
            if sel.any():
                lowest = float(pts[sel, 2].min())
                walls[i] = split_container(pts[sel], boxes[i], lowest, c.voxel_size) is not None
        for a, i in enumerate(big):
            if not walls.get(i) or not (labels == i).any():        # no walls, or joined to another already
                continue
            low_i = float(pts[labels == i, 2].min())
            for j in big[a + 1:]:
                sel = labels == j
                if not sel.any() or j not in boxes or float(pts[sel, 2].min()) > low_i + 0.5 * boxes[i].size[2]:
                    continue
                bj, yaw = boxes[j], _yaw(boxes[j])
                rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
                samples = np.column_stack([(grid * bj.size[:2]) @ rot.T + bj.center[:2], np.zeros(len(grid))])
                inside = (np.abs(_local_xy(samples, boxes[i])) <= 0.5 * np.asarray(boxes[i].size[:2])).all(axis=1)
                if inside.mean() >= 0.9:
                    labels[sel] = i

    def _segments(self, points, colors, of_point, owner, supports, objects, vox) -> list[SegmentedObject]:
        c = self.cfg
        point_owner = np.where(of_point >= 0, owner[of_point], -1)
        out, counts = [], {}

        def add(label: str, sel: np.ndarray, box: OrientedBox, score: float) -> None:
            counts[label] = counts.get(label, 0) + 1
            out.append(SegmentedObject(f"{label}_{len(out)}", label, points[sel].astype(np.float32), score, box,
                                       None if colors is None else colors[sel]))
        for k, s in enumerate(supports):
            sel = point_owner == k
            if sel.sum() >= c.min_points:                  # the box of its voxels: a table has 100k points
                add("shelf" if s.wall else "table", sel, yaw_box(vox[owner == k]), 1.0)
        for j, _idx in enumerate(objects):
            sel = np.flatnonzero(point_owner == len(supports) + j)
            if len(sel) < c.min_points:
                continue
            pts = points[sel]
            box = yaw_box(pts)
            base = max((s.height for s in supports if self.under(s, pts[:1], 0.0).all()
                        and s.height <= pts[:, 2].min() + c.voxel_size), default=float(pts[:, 2].min()))
            parts = split_container(pts, box, base, c.voxel_size)
            if parts is None:
                self._add_solid(add, sel, pts, base)
                continue
            shell, contents = parts
            items = []
            if contents.sum() >= c.min_points:
                # a speck of an item's side seen past the rim (at most 2.5 voxels every way) is the
                # nearest item's; an item seen as a thin slice stays one
                pieces = merge_wall_fragments(pts[contents], _clusters(pts[contents], 0.3 * c.cluster_eps, 1),
                                              c.voxel_size, 2 * c.cluster_eps, smaller_than=2.5 * c.voxel_size)
                longest_item = max((max(hi) for cls, (_lo, hi) in c.size_priors.items() if cls not in CONTAINERS),
                                   default=math.inf)
                for k in range(pieces.max() + 1):
                    piece = np.flatnonzero(contents)[pieces == k]
                    # a flat or thin piece a quarter longer than any item of the catalogue is the
                    # container's own: its floor or a wall, seen inside its box where it tilts (a
                    # bin lying across the edge of a table), not an item
                    size = yaw_box(pts[piece]).size if len(piece) >= 3 else np.zeros(3)
                    if size[0] > 1.25 * longest_item and (size[2] <= 0.04 or size[1] <= 2.5 * c.voxel_size):
                        shell[piece] = True
                    elif size[1] < c.voxel_size and len(piece) < 3 * c.min_points:   # a sliver: a wall's edge
                        shell[piece] = True
                    elif len(piece) >= c.min_points:
                        items += [piece[sub] for sub in part_side_by_side(pts[piece], c.min_points)]
            shell_box = self.standing(yaw_box(pts[shell]), pts[shell], base)
            label, score = classify(shell_box, True, c.size_priors)
            add(label, sel[shell], shell_box, score)
            for piece in items:
                self._add_solid(add, sel[piece], pts[piece], None)
        return out

    def standing(self, box: OrientedBox, pts: np.ndarray, base: float | None) -> OrientedBox:
        """``box`` reaching down to the surface the object stands on (its hidden bottom)."""
        if base is None:
            return box
        lo, hi = base, float(pts[:, 2].max())
        return OrientedBox(np.array([box.center[0], box.center[1], 0.5 * (lo + hi)]), box.orientation,
                           np.array([box.size[0], box.size[1], max(hi - lo, box.size[2])]))

    def _add_solid(self, add, sel, pts, base) -> None:
        box = self.standing(yaw_box(pts), pts, base)
        label, score = classify(box, False, self.cfg.size_priors)
        add(label, sel, box, score)
