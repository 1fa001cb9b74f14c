"""Rendered RGB images with instance masks and classes: training data for image segmentation (issue 31).

:func:`make_image_dataset` renders task scenes (every layout of ``layouts``, task kind and
object count, fresh seeds;
each as generated and after ``skills_per_scene`` random skills drawn as the skill-effect data
draws them) from the world's cameras, each view with its eye and target jittered by up to
``camera_jitter`` m so a model sees more than three viewpoints, at the cameras' 640x480. The
simulator's segmentation image is the truth: every segment with at least ``min_mask_pixels``
visible pixels becomes an instance, its class the segment's (the one vocabulary,
``f2p_common.vocabulary.OBJECT_CLASSES``, in that order as class indices).

It writes the layout ultralytics trains from (``images/{train,val}/*.png``,
``labels/{train,val}/*.txt`` with one ``class x1 y1 x2 y2 ...`` polygon per instance, normalised;
``data.yaml``) and ``manifest.json`` (the config, the counts per class, the time). Views are
named by their scene and camera; a view whose image and label both exist is not rendered again,
so an interrupted run resumes where it stopped. ``val_fraction`` of the scenes (whole scenes,
by seed) go to ``val``.

Needs a GL backend for ``mujoco.Renderer`` (``MUJOCO_GL=egl`` or ``osmesa``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from f2p_common.vocabulary import OBJECT_CLASSES
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_datasets.datagen import sample_action
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, ImageRenderer
from f2p_sim.tasks import OBJECT_COUNTS, TASK_KINDS, make_task


@dataclass
class ImageDataConfig:
    """Module docstring. ``seed_base``: task seeds are ``seed_base + 1000 n + i``."""

    out: str
    scenes_per_cell: int = 6
    skills_per_scene: int = 2
    cameras: tuple[str, ...] = ("front", "left_high", "right_low")
    camera_jitter: float = 0.1
    min_mask_pixels: int = 30
    val_fraction: float = 0.15
    seed_base: int = 90000
    seed: int = 0
    tasks: tuple[str, ...] = TASK_KINDS
    object_counts: tuple[int, ...] = OBJECT_COUNTS
    #: Task-scene layouts of the world config (f2p_sim.config): views of real furniture and
    #: object sizes (real_scale) besides the paper's scenes.
    layouts: tuple[str, ...] = ("paper",)
    world_config: str | None = None

    def __post_init__(self):
        if self.scenes_per_cell < 1 or self.skills_per_scene < 0 or not self.cameras:
            raise ValueError("scenes_per_cell must be >= 1, skills_per_scene >= 0, and cameras non-empty")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        unknown = set(self.layouts) - set(LAYOUTS)
        if not self.layouts or unknown:
            raise ValueError(f"layouts must be some of {', '.join(LAYOUTS)}, got {list(self.layouts)}")


@dataclass
class ImageDataResult:
    root: Path
    data_yaml: Path
    views: dict = field(default_factory=dict)          # split -> views written or found
    instances: dict = field(default_factory=dict)      # class -> instances
    rendered: int = 0                                  # views rendered by this run (the rest were there)
    seconds: float = 0.0


def mask_polygon(mask: np.ndarray) -> np.ndarray | None:
    """The outline of ``mask``'s largest connected part as an (N, 2) pixel polygon (x, y),
    simplified to 0.7 px, or None when it has fewer than 3 vertices (cv2's contour tracing, as
    ultralytics' own converters use)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    c = cv2.approxPolyDP(c, 0.7, True).reshape(-1, 2)          # the staircase outline within 0.7 px
    return c.astype(np.float64) if len(c) >= 3 else None


def view_labels(segmentation: np.ndarray, classes: list[str], min_pixels: int) -> list[str]:
    """YOLO segmentation label lines of one view: ``segmentation`` (H, W) segment index per pixel
    (-1: none), ``classes`` the class of each segment."""
    h, w = segmentation.shape
    lines = []
    for k in np.unique(segmentation[segmentation >= 0]):
        mask = segmentation == k
        if mask.sum() < min_pixels:
            continue
        poly = mask_polygon(mask)
        if poly is None:
            continue
        xy = (poly + 0.5) / np.array([w, h])                # pixel centres, normalised to [0, 1]
        coords = " ".join(f"{v:.5f}" for v in np.clip(xy, 0.0, 1.0).reshape(-1))
        lines.append(f"{OBJECT_CLASSES.index(classes[int(k)])} {coords}")
    return lines


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jittered(camera: Camera, rng: np.random.Generator, jitter: float) -> Camera:
    eye = np.asarray(camera.eye) + rng.uniform(-jitter, jitter, 3)
    target = np.asarray(camera.target) + rng.uniform(-jitter, jitter, 3) * np.array([1.0, 1.0, 0.5])
    return replace(camera, eye=tuple(float(v) for v in eye), target=tuple(float(v) for v in target))


def make_image_dataset(cfg: ImageDataConfig, progress: Callable[[int, int], None] | None = None) -> ImageDataResult:
    """Render the dataset of ``cfg`` (module docstring); resumes an interrupted run.
    ``progress(done, total)`` after every scene. Views of the paper layout are named
    ``<task>_<n>_<seed>_<phase>_<camera>``, others get their layout as a prefix."""
    from PIL import Image

    t0 = time.perf_counter()
    root = Path(cfg.out)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    cells = [(layout, kind, n, i) for layout in cfg.layouts for kind in cfg.tasks for n in cfg.object_counts
             for i in range(cfg.scenes_per_cell)]
    worlds = {layout: load_world_config(cfg.world_config, layout) for layout in cfg.layouts}
    backends = {layout: MujocoBackend(world) for layout, world in worlds.items()}
    result = ImageDataResult(root, root / "data.yaml", {"train": 0, "val": 0}, {c: 0 for c in OBJECT_CLASSES})
    renderer: ImageRenderer | None = None                  # one GL context; a new one per scene model
    try:
        for done, (layout, kind, n, i) in enumerate(cells):
            world, backend = worlds[layout], backends[layout]
            seed = cfg.seed_base + 1000 * n + i
            split = "val" if np.random.default_rng([cfg.seed, seed, 1]).random() < cfg.val_fraction else "train"
            rng = np.random.default_rng([cfg.seed, seed])
            backend.load(make_task(kind, n, seed, world).scene)
            classes = [s.cls for s in backend.segments]
            for phase in range(cfg.skills_per_scene + 1):
                if phase:
                    skill, target, params = sample_action(rng, backend, 0.6)
                    try:
                        backend.execute_skill(skill, target, params)
                    except ValueError:
                        continue                           # a refused skill: the scene as it was
                for cam_name in cfg.cameras:
                    camera = _jittered(Camera.from_config(world, cam_name), rng, cfg.camera_jitter)
                    stem = ("" if layout == "paper" else f"{layout}_") + f"{kind}_{n}_{seed}_{phase}_{cam_name}"
                    image, label = root / "images" / split / f"{stem}.png", root / "labels" / split / f"{stem}.txt"
                    if image.exists() and label.exists():
                        lines = label.read_text().splitlines()
                    else:
                        if renderer is None or renderer.model is not backend.model:
                            if renderer is not None:
                                renderer.close()
                            renderer = ImageRenderer(backend, camera)
                        renderer.set_camera(camera)
                        frame = renderer.render(segmentation=True)
                        lines = view_labels(frame["segmentation"], classes, cfg.min_mask_pixels)
                        _write_atomic(label, ("\n".join(lines) + "\n").encode() if lines else b"")
                        tmp = image.with_name(image.stem + ".tmp.png")
                        Image.fromarray(frame["rgb"]).save(tmp)
                        os.replace(tmp, image)
                        result.rendered += 1
                    result.views[split] += 1
                    for line in lines:
                        result.instances[OBJECT_CLASSES[int(line.split()[0])]] += 1
            if progress is not None:
                progress(done + 1, len(cells))
    finally:
        if renderer is not None:
            renderer.close()
    names = "\n".join(f"  {k}: {c}" for k, c in enumerate(OBJECT_CLASSES))
    _write_atomic(result.data_yaml, f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
                  .encode())
    result.seconds = time.perf_counter() - t0
    manifest = {"config": asdict(cfg), "views": result.views, "instances": result.instances,
                "rendered_this_run": result.rendered, "seconds": round(result.seconds, 1)}
    _write_atomic(root / "manifest.json", json.dumps(manifest, indent=1).encode())
    return result


def main(argv=None) -> int:
    import argparse
    import sys

    d = ImageDataConfig("")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="dataset folder (an interrupted run resumes there)")
    p.add_argument("--scenes-per-cell", type=int, default=d.scenes_per_cell, help="scenes per task and object count")
    p.add_argument("--skills-per-scene", type=int, default=d.skills_per_scene)
    p.add_argument("--cameras", nargs="+", default=list(d.cameras))
    p.add_argument("--camera-jitter", type=float, default=d.camera_jitter, help="m, on each view's eye and target")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--world-config", default=None, help="world YAML (default: the installed f2p_sim world.yaml)")
    p.add_argument("--layouts", nargs="+", default=list(d.layouts), choices=LAYOUTS,
                   help="task-scene layouts of the world config")
    a = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        cfg = ImageDataConfig(a.out, a.scenes_per_cell, a.skills_per_scene, tuple(a.cameras), a.camera_jitter,
                              val_fraction=a.val_fraction, seed=a.seed, layouts=tuple(a.layouts),
                              world_config=a.world_config)
        result = make_image_dataset(cfg, lambda done, total: print(f"[f2p-render-seg-data] scene {done}/{total}",
                                                                   flush=True))
    except (ValueError, RuntimeError) as e:
        print(f"f2p-render-seg-data: {e}", file=sys.stderr)
        return 2
    print(f"[f2p-render-seg-data] {result.views} views ({result.rendered} rendered now) in {result.seconds:.0f} s: "
          f"{result.data_yaml}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
