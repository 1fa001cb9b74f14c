"""Observations Ψ(s) (paper 000 §5): partial-view segmented point clouds by ray casting.

A pinhole :class:`Camera` (eye, look-at target, vertical field of view, width x height)
casts rays through pixels via the backend (MuJoCo ``mj_multiRay``; no OpenGL). Each hit
carries the segment id of the geom it hit, so segmentation is perfect before noise; the
floor and the gripper are not segments. Only surfaces facing the camera are hit: the cloud
is a partial view, like the robot's depth camera. With ``coarse_stride`` s > 1 only every
s-th pixel row/column of the background is cast, while every pixel that can see a movable
object, container or drawer is cast (see :meth:`Camera.ray_mask`): small objects keep the
full camera resolution at a fraction of the rays.

The :class:`NoiseModel` reproduces the noise study of paper 000 Fig. 3b: Gaussian noise
along each ray (depth), isotropic Gaussian noise on each point, and ray dropout.

For the learner every segment's hits are resampled to a fixed ``points_per_segment``
(deterministically: an even stride through the hits in raster order, repeating when there
are fewer hits), giving ``points`` of shape (S, K, 3); ``counts`` keeps the raw number of
hits per segment (0 = the segment was not seen; its rows are then zeros).

:func:`camera_cloud` gives what a (perfectly segmenting) depth camera driver publishes: every
return, floor included, with colour, instance and class per point. :func:`render_images` gives
RGB / depth / segmentation images through MuJoCo's renderer
where a GL backend exists (``MUJOCO_GL=egl`` or ``osmesa``); it raises RuntimeError if not.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from f2p_common.interfaces import NO_OBJECT, CameraCloud
from f2p_common.vocabulary import CONTAINER_CLASSES, MOVABLE_CLASSES, OBJECT_CLASSES
from f2p_sim.backend import SimBackend

#: Segments cast at full camera resolution when the camera uses a coarse background grid.
FOCUS_CLASSES = MOVABLE_CLASSES | CONTAINER_CLASSES


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking from ``eye`` at ``target`` (world, m), z-up, square pixels."""

    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fovy_deg: float
    width: int
    height: int
    coarse_stride: int = 1
    focus_rays: int = 600

    def __post_init__(self):
        if self.coarse_stride < 1:
            raise ValueError(f"camera {self.name}: coarse_stride must be >= 1")
        if not (0.0 < self.fovy_deg < 179.0):
            raise ValueError(f"camera {self.name}: fovy_deg must be in (0, 179), got {self.fovy_deg}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera {self.name}: resolution must be positive")
        eye, tgt = np.asarray(self.eye, float), np.asarray(self.target, float)
        if not (np.all(np.isfinite(eye)) and np.all(np.isfinite(tgt))) or np.linalg.norm(tgt - eye) < 1e-6:
            raise ValueError(f"camera {self.name}: eye and target must be finite and distinct")

    @classmethod
    def from_config(cls, cfg: dict, name: str, **overrides) -> "Camera":
        try:
            c = dict(cfg["cameras"][name])
        except KeyError:
            raise ValueError(f"unknown camera {name!r}; known: {', '.join(cfg['cameras'])}") from None
        c.update(overrides)
        return cls(name=name, eye=tuple(c["eye"]), target=tuple(c["target"]), fovy_deg=float(c["fovy_deg"]),
                   width=int(c["width"]), height=int(c["height"]), coarse_stride=int(c.get("coarse_stride", 1)),
                   focus_rays=int(c.get("focus_rays", 600)))

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels."""
        fy = 0.5 * self.height / np.tan(np.radians(self.fovy_deg) / 2)
        return fy, fy, 0.5 * self.width, 0.5 * self.height

    @property
    def ros_intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) as sensor_msgs/CameraInfo's K has them: pixel (u, v)'s centre at integer
        u, v (:attr:`intrinsics` puts it at u + 0.5, as the rays are cast)."""
        fx, fy, cx, cy = self.intrinsics
        return fx, fy, cx - 0.5, cy - 0.5

    def frame(self) -> np.ndarray:
        """3x3 world rotation whose columns are camera right, down, forward (OpenCV convention)."""
        return _camera_frame(tuple(self.eye), tuple(self.target))

    def optical_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The optical frame (x right, y down, z forward: REP-103's ``_optical``) in the world:
        position (3,) m and quaternion (x, y, z, w)."""
        r = self.frame()                                    # columns: right, down, forward
        w = 0.5 * np.sqrt(max(1e-12, 1.0 + r[0, 0] + r[1, 1] + r[2, 2]))
        if w > 1e-3:
            q = np.array([(r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w), w])
        else:                                                      # a half-turn: the general formula
            i = int(np.argmax(np.diag(r)))
            j, k = (i + 1) % 3, (i + 2) % 3
            t = np.sqrt(max(1e-12, 1.0 + r[i, i] - r[j, j] - r[k, k]))
            q = np.zeros(4)
            q[i], q[3] = 0.5 * t, (r[k, j] - r[j, k]) / (2 * t)
            q[j], q[k] = (r[j, i] + r[i, j]) / (2 * t), (r[k, i] + r[i, k]) / (2 * t)
        return np.asarray(self.eye, float), q / np.linalg.norm(q)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates (u, v) of world points (points behind the camera -> NaN)."""
        fx, fy, cx, cy = self.intrinsics
        p = (np.asarray(points, float) - np.asarray(self.eye, float)) @ self.frame()
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy], axis=1)
        uv[p[:, 2] <= 1e-6] = np.nan
        return uv

    def ray_mask(self, focus_lower: np.ndarray | None = None, focus_upper: np.ndarray | None = None,
                 pad_px: int = 2) -> np.ndarray:
        """Pixels to cast: every ``coarse_stride``-th row and column, plus the pixels whose
        rays can hit a focus box (its projected corners' rectangle, padded), at the finest
        stride that keeps about ``focus_rays`` rays per box (stride 1 for small objects).

        Foveated casting is a sim-side speed-up, not a different sensor: a ray cast here
        returns exactly what the full-resolution camera sees at that pixel; pixels not cast
        are only those of the coarse background (tables, shelves, floor).
        """
        mask = np.zeros((self.height, self.width), dtype=bool)
        mask[::self.coarse_stride, ::self.coarse_stride] = True
        if focus_lower is not None and self.coarse_stride > 1:
            for lo, hi in zip(np.asarray(focus_lower), np.asarray(focus_upper)):
                corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
                uv = self.project(corners)
                if np.any(np.isnan(uv)):
                    mask[:] = True  # a box reaches behind the camera: cast everything
                    break
                u0, v0 = np.floor(uv.min(axis=0)).astype(int) - pad_px
                u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + pad_px
                v0, v1 = max(v0, 0), max(min(v1, self.height), 0)
                u0, u1 = max(u0, 0), max(min(u1, self.width), 0)
                if v1 <= v0 or u1 <= u0:
                    continue  # the box is outside the image
                stride = max(1, int(np.sqrt((v1 - v0) * (u1 - u0) / max(self.focus_rays, 1))))
                mask[v0:v1:stride, u0:u1:stride] = True
        return mask.reshape(-1)

    def ray_directions(self) -> np.ndarray:
        """(H*W, 3) unit ray directions in world frame, raster order (row-major from top-left)."""
        return _ray_directions(self)


@functools.lru_cache(maxsize=32)
def _camera_frame(eye: tuple, target: tuple) -> np.ndarray:
    eye, tgt = np.asarray(eye, float), np.asarray(target, float)
    f = (tgt - eye) / np.linalg.norm(tgt - eye)
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    down = np.cross(f, r)
    frame = np.stack([r, down, f], axis=1)
    frame.setflags(write=False)
    return frame


@functools.lru_cache(maxsize=32)
def _ray_directions(cam: Camera) -> np.ndarray:
    fx, fy, cx, cy = cam.intrinsics
    u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    d_cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
    d = d_cam @ cam.frame().T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d.setflags(write=False)
    return d


@dataclass(frozen=True)
class NoiseModel:
    """Sensor noise (paper 000 Fig. 3b): depth_std and point_std in m, dropout probability."""

    depth_std: float = 0.0
    point_std: float = 0.0
    dropout: float = 0.0

    def __post_init__(self):
        if not (self.depth_std >= 0 and self.point_std >= 0 and 0 <= self.dropout < 1):
            raise ValueError(f"bad noise model {self}: stds must be >= 0 and dropout in [0, 1)")

    @classmethod
    def from_config(cls, cfg: dict) -> "NoiseModel":
        n = cfg.get("noise", {})
        return cls(float(n.get("depth_std", 0.0)), float(n.get("point_std", 0.0)), float(n.get("dropout", 0.0)))

    @property
    def is_zero(self) -> bool:
        return self.depth_std == 0 and self.point_std == 0 and self.dropout == 0

    def depth_image(self, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A rendered depth image (m) as the sensor gives it: Gaussian noise of ``depth_std`` and
        ``point_std`` (both along the optical axis: a depth image has one number per pixel) and
        ``dropout`` pixels with no return (NaN, as a driver's 32FC1 image has them)."""
        if self.is_zero:
            return depth
        out = depth.astype(np.float32).copy()
        std = float(np.hypot(self.depth_std, self.point_std))
        if std > 0:
            out += rng.normal(0.0, std, out.shape).astype(np.float32)
        if self.dropout > 0:
            out[rng.random(out.shape) < self.dropout] = np.nan
        return out


@dataclass
class Observation:
    """A segmented partial-view cloud. Rows of ``points``/``counts`` follow the scene segments."""

    points: np.ndarray        # (S, K, 3) float32, fixed K per segment
    counts: np.ndarray        # (S,) int32 raw hits per segment before resampling
    raw_points: np.ndarray    # (P, 3) float32 every hit on a segment
    raw_segments: np.ndarray  # (P,) int32 segment id of each raw point
    camera: str

    @property
    def num_points(self) -> int:
        """Points in the raw cloud (hits on segments)."""
        return int(self.raw_points.shape[0])

    def segment_cloud(self, i: int) -> np.ndarray:
        return self.raw_points[self.raw_segments == i]


def resample_fixed(points: np.ndarray, segments: np.ndarray, num_segments: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, k, 3) fixed-size clouds and (S,) counts from raw points with segment ids."""
    out = np.zeros((num_segments, k, 3), dtype=np.float32)
    order = np.argsort(segments, kind="stable")
    counts = np.bincount(segments, minlength=num_segments)[:num_segments].astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for s in range(num_segments):
        n = counts[s]
        if n == 0:
            continue
        idx = (np.arange(k) * n) // k if n >= k else np.arange(k) % n
        out[s] = points[order[starts[s] + idx]]
    return out, counts


def observe(backend: SimBackend, camera: Camera, noise: NoiseModel | None = None,
            rng: np.random.Generator | None = None, points_per_segment: int = 512,
            cutoff: float = 10.0) -> Observation:
    """Ψ(s): cast the camera's rays in the backend's current state and segment the hits."""
    eye = np.asarray(camera.eye, dtype=np.float64)
    if camera.coarse_stride > 1:
        st = backend.segment_state()
        focus = np.array([s.cls in FOCUS_CLASSES for s in backend.segments])
        mask = camera.ray_mask(st.box_lower[focus], st.box_upper[focus])
        dirs = camera.ray_directions()[mask]
    else:
        dirs = camera.ray_directions()
    dist, seg = backend.raycast(eye, dirs, cutoff)
    hit = seg >= 0
    if noise is not None and not noise.is_zero:
        if rng is None:
            raise ValueError("a noise model needs an rng (numpy Generator) for reproducibility")
        if noise.dropout > 0:
            hit &= rng.random(hit.shape[0]) >= noise.dropout
        if noise.depth_std > 0:
            dist = dist + rng.normal(0.0, noise.depth_std, dist.shape[0])
    pts = eye[None, :] + dist[hit, None] * dirs[hit]
    if noise is not None and noise.point_std > 0:
        pts = pts + rng.normal(0.0, noise.point_std, pts.shape)
    pts = pts.astype(np.float32)
    segs = seg[hit].astype(np.int32)
    fixed, counts = resample_fixed(pts, segs, len(backend.segments), points_per_segment)
    return Observation(points=fixed, counts=counts, raw_points=pts, raw_segments=segs, camera=camera.name)


#: Colour of returns from the floor and anything that is not an object (RGB).
FLOOR_RGB = (128, 128, 128)


def camera_cloud(backend: SimBackend, camera: Camera, *, organized: bool = False, noise: NoiseModel | None = None,
                 rng: np.random.Generator | None = None, frame_id: str = "base_link", stamp_ns: int = 0,
                 cutoff: float = 10.0) -> CameraCloud:
    """What the camera's driver would publish, as a perfectly segmenting camera: every return
    (floor included) in the world frame, coloured by its class, with per-point ``instance`` (the
    segment index) and ``label`` (its class index), NO_OBJECT for the floor.

    ``organized``: every pixel, in raster order, NaN where a ray hits nothing (a driver's
    organised height x width cloud); otherwise the camera's foveated ray mask (:meth:`Camera.ray_mask`)
    and returns only. Noise as in :func:`observe`."""
    eye = np.asarray(camera.eye, dtype=np.float64)
    dirs = camera.ray_directions()
    if not organized and camera.coarse_stride > 1:
        st = backend.segment_state()
        focus = np.array([s.cls in FOCUS_CLASSES for s in backend.segments])
        dirs = dirs[camera.ray_mask(st.box_lower[focus], st.box_upper[focus])]
    dist, seg = backend.raycast(eye, dirs, cutoff)
    hit = np.isfinite(dist)
    if noise is not None and not noise.is_zero:
        if rng is None:
            raise ValueError("a noise model needs an rng (numpy Generator) for reproducibility")
        if noise.dropout > 0:
            hit &= rng.random(hit.shape[0]) >= noise.dropout
        if noise.depth_std > 0:
            dist = dist + rng.normal(0.0, noise.depth_std, dist.shape[0])
    pts = eye[None, :] + np.where(hit, dist, np.nan)[:, None] * dirs
    if noise is not None and noise.point_std > 0:
        pts = pts + rng.normal(0.0, noise.point_std, pts.shape)
    seg = np.where(hit, seg, NO_OBJECT)
    classes = [s.cls for s in backend.segments]
    seg_label = np.array([OBJECT_CLASSES.index(c) for c in classes] + [NO_OBJECT], dtype=np.int32)
    palette = np.array([[int(round(255 * v)) for v in backend.cfg["classes"][c]["rgba"][:3]] for c in classes]
                       + [list(FLOOR_RGB)], dtype=np.uint8)
    if not organized:
        keep = hit
        pts, seg = pts[keep], seg[keep]
    return CameraCloud(pts.astype(np.float32), palette[seg], seg.astype(np.int32), seg_label[seg], frame_id, stamp_ns,
                       height=camera.height if organized else 1)


def _load_triton_before_gl() -> None:
    """Import triton (if installed) before Mesa's GL driver loads its LLVM.

    Measured with torch 2.15 / triton and Mesa EGL (llvmpipe): once Mesa's LLVM is in the
    process, a later `import triton` (torch does it lazily, e.g. when an optimizer is
    built) segfaults while loading libtriton; in the other order both work. Rendering and
    training share a process in the learner and the demo, so rendering goes second.
    """
    import importlib.util
    import sys

    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


class ImageRenderer:
    """RGB and depth images of ``camera`` through MuJoCo's renderer, its GL context kept between
    frames (creating one costs more than a frame). Needs a GL backend (MUJOCO_GL=egl or osmesa
    before mujoco is imported); RuntimeError when none is available. MuJoCo backend only; not
    thread-safe: one caller at a time (the GL context is made current on each render)."""

    def __init__(self, backend, camera: Camera):
        import mujoco

        _load_triton_before_gl()
        self.backend, self.camera = backend, camera
        try:
            self._renderer = mujoco.Renderer(backend.model, height=camera.height, width=camera.width)
        except Exception as e:  # no GL context: the ray-cast cloud still works
            raise RuntimeError(f"no OpenGL backend for mujoco.Renderer ({e}); set MUJOCO_GL=egl or osmesa") from None
        self.model = backend.model                         # the scene model it renders (a reset builds another)
        self._view = mujoco.MjvCamera()
        self.set_camera(camera)

    def set_camera(self, camera: Camera) -> None:
        """Render from ``camera`` (its resolution must be the renderer's)."""
        if (camera.width, camera.height) != (self.camera.width, self.camera.height):
            raise ValueError(f"camera {camera.name} is {camera.width}x{camera.height}; the renderer "
                             f"{self.camera.width}x{self.camera.height}")
        self.camera = camera
        eye, tgt = np.asarray(camera.eye, float), np.asarray(camera.target, float)
        delta = tgt - eye
        self._view.lookat[:] = tgt
        self._view.distance = float(np.linalg.norm(delta))
        self._view.azimuth = float(np.degrees(np.arctan2(delta[1], delta[0])))
        self._view.elevation = float(np.degrees(np.arcsin(delta[2] / np.linalg.norm(delta))))

    def render(self, segmentation: bool = False) -> dict:
        """``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float32 m along the optical axis, and with
        ``segmentation`` the segment index per pixel (-1: none)."""
        model, data, r = self.backend.model, self.backend.data, self._renderer
        model.vis.global_.fovy = self.camera.fovy_deg
        r.update_scene(data, camera=self._view)
        out = {"rgb": r.render().copy()}
        r.enable_depth_rendering()
        out["depth"] = r.render().astype(np.float32)
        r.disable_depth_rendering()
        if segmentation:
            r.enable_segmentation_rendering()
            seg_geom = r.render()[..., 0].copy()
            r.disable_segmentation_rendering()
            lut = self.backend._geom_seg
            out["segmentation"] = np.where(seg_geom >= 0, lut[np.clip(seg_geom, 0, len(lut) - 1)], -1)
        return out

    def close(self) -> None:
        self._renderer.close()


def render_images(backend, camera: Camera) -> dict:
    """RGB (H, W, 3) uint8, depth (H, W) m and segment ids (H, W) of one frame (a renderer made
    and closed for it: :class:`ImageRenderer` keeps one); RuntimeError without a GL backend."""
    renderer = ImageRenderer(backend, camera)
    try:
        return renderer.render(segmentation=True)
    finally:
        renderer.close()
