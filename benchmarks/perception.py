"""Segmentation backends against the simulator's ground truth (issue 31), on RGB-D frames.

Fresh scenes (task seeds 70000 + 1000·n + i, never a training or evaluation seed) of every task
and object count, each as generated and after one random skill (as the relation benchmark
draws them), rendered by the simulated front camera at 640x480 (colour, depth, CameraInfo, the
camera's pose: what a robot's RGB-D driver gives), with and without sensor noise on the depth
image (depth noise, missing returns). Every backend reads the same frame
(f2p_perception.segmentation.rgbd_frame); the renderer's segmentation image is the truth, pixel
by pixel. Per backend and noise level:

* instance precision / recall: a segment and a true instance match when their point IoU is at
  least 0.5 (true instances with fewer than 10 points — barely seen — are left out);
* mean IoU: each true instance's best IoU with any segment;
* class accuracy over the matched instances;
* relation F1 after perception: the geometric relation detector on the perceived segments
  (their boxes and classes) against the simulator's relations, over the matched objects;
* rate on this CPU: frames per second of the backend on the 640x480 frame (median), and of the
  whole path (back-projection into the base frame, then the backend).

Backends: ``geometric``; ``convex`` (class-agnostic, classes by the geometric size rule); ``yolo_seg`` with the shipped model (or ``--yolo-weights``); ``sam``
needs SAM's weights (``--sam-checkpoint``, vit_b), which cannot be downloaded here: without
them only its rate is measured, with a random-weight vit_b (the real architecture) on
``--sam-frames`` frames.

Scenes are drawn in each ``--layouts`` layout of the world config: ``real_scale`` (tables
0.5-2 m at 0.4-0.9 m, objects 3-12 cm: a robot's room) and ``paper`` (paper 000's 0.5 m
tables, what the shipped models were trained on). Writes
``benchmarks/results/perception.{json,md}`` and ``perception.png`` (one real-scale frame: colour,
the simulator's instances, each backend's segments).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from f2p_common.interfaces import NO_OBJECT, CameraCloud, SegmentedScene
from f2p_common.vocabulary import OBJECT_CLASSES
from f2p_perception.segmentation import SEGMENTERS, rgbd_frame
from f2p_relations.detectors import GeometricDetector
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_sim.observation import Camera, ImageRenderer, NoiseModel
from f2p_sim.robot import SimRobot
from f2p_skill_effect.metrics import metrics_from_counts, relation_counts
from relation_detector import scenarios

RESULTS = Path(__file__).resolve().parent / "results"
SEED_BASE = 70000
NOISE = {"none": NoiseModel(), "sensor": NoiseModel(depth_std=0.004, point_std=0.002, dropout=0.1)}
MIN_TRUE_POINTS = 10


def score_scene(index: dict, truth_cloud: CameraCloud, objects, truth_relations) -> dict:
    """Matches of one scene (module docstring): counts, IoUs, class hits, relation counts.
    ``index`` maps each finite point (a tuple) of the frame to its pixel."""
    cloud = truth_cloud
    segs = [np.fromiter((index[tuple(p)] for p in o.points.tolist()), np.int64) for o in objects]
    seg_sets = [set(s.tolist()) for s in segs]
    ids, true_sets = [], []
    for k in np.unique(cloud.instance[cloud.instance != NO_OBJECT]):
        members = np.flatnonzero(cloud.instance == k)
        if len(members) >= MIN_TRUE_POINTS:
            ids.append(int(k))
            true_sets.append(set(members.tolist()))
    ious = np.zeros((len(true_sets), len(seg_sets)))
    for a, t in enumerate(true_sets):
        for b, s in enumerate(seg_sets):
            inter = len(t & s)
            if inter:
                ious[a, b] = inter / len(t | s)
    best = ious.max(axis=1) if len(seg_sets) else np.zeros(len(true_sets))
    match = {a: int(ious[a].argmax()) for a in range(len(true_sets)) if len(seg_sets) and best[a] >= 0.5}
    classes = [OBJECT_CLASSES[int(cloud.label[cloud.instance == k][0])] for k in ids]
    out = {"true": len(true_sets), "segments": len(seg_sets), "matched": len(match),
           "matched_segments": len(set(match.values())), "ious": best.tolist(),
           "class_right": sum(objects[b].label == classes[a] for a, b in match.items())}
    if len(match) >= 2:
        rows = sorted(match)
        scene = SegmentedScene([objects[match[a]] for a in rows], "base_link")
        state = GeometricDetector().detect(scene)
        names = truth_relations.object_ids
        keep = [names.index(f"{classes[a]}_{ids[a]}") for a in rows]
        tu, tb = truth_relations.unary[keep], truth_relations.binary[np.ix_(keep, keep)]
        out["relations"] = relation_counts(state.unary[None], state.binary[None], tu[None], tb[None],
                                           np.ones((1, len(rows)), bool))
    return out


def _empty() -> dict:
    return {"true": 0, "segments": 0, "matched": 0, "matched_segments": 0, "ious": [], "class_right": 0,
            "relations": {}, "seconds": [], "path_seconds": [], "refused": 0}


def _random_vit_b(folder: Path) -> Path:
    """A random-weight SAM vit_b checkpoint (the real architecture, for its rate only)."""
    import torch
    from segment_anything import sam_model_registry
    path = folder / "sam_vit_b_random.pth"
    torch.manual_seed(0)
    torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    return path


def run(scenes: int, seed: int, yolo_weights: str, sam_checkpoint: str, sam_frames: int, layout: str = "real_scale",
        picture: Path | None = None, say=print) -> dict:
    import tempfile

    rng = np.random.default_rng(seed)
    cfg = load_world_config(layout=layout)
    robot = SimRobot(cfg)
    camera = Camera.from_config(cfg, "front")
    intrinsics = camera.ros_intrinsics
    segmenters = {"geometric": SEGMENTERS.make("geometric"), "convex": SEGMENTERS.make("convex"),
                  "yolo_seg": SEGMENTERS.make("yolo_seg", weights=yolo_weights)}
    tmp = tempfile.TemporaryDirectory()
    sam_measured = bool(sam_checkpoint)
    segmenters["sam"] = SEGMENTERS.make("sam", checkpoint=sam_checkpoint or str(_random_vit_b(Path(tmp.name))))
    acc = {b: {n: _empty() for n in NOISE} for b in segmenters}
    renderer = None
    sam_done = 0
    for kind, n, i, phase in scenarios(robot, scenes, rng, SEED_BASE):
        truth = robot.relations()
        if renderer is None or renderer.model is not robot.backend.model:
            if renderer is not None:
                renderer.close()
            renderer = ImageRenderer(robot.backend, camera)
        images = renderer.render(segmentation=True)
        pos, quat = robot.camera_pose()
        seg_image = images["segmentation"].reshape(-1)
        for noise_name, noise in NOISE.items():
            depth = noise.depth_image(images["depth"], rng)
            t0 = time.perf_counter()
            frame = rgbd_frame(images["rgb"], depth, intrinsics, (*pos, *quat), "base_link", "camera", info_size=(640, 480))
            frame_s = time.perf_counter() - t0
            finite = np.isfinite(frame.cloud.points).all(axis=1)
            inst = np.where(finite & (seg_image >= 0), seg_image, NO_OBJECT).astype(np.int32)
            labels = np.array([OBJECT_CLASSES.index(c) for c in robot.scene.labels] + [NO_OBJECT], np.int32)
            truth_cloud = CameraCloud(frame.cloud.points, instance=inst, label=labels[inst], height=480)
            index = {tuple(p): j for j, p in zip(np.flatnonzero(finite).tolist(), frame.cloud.points[finite].tolist())}
            drawn = {}
            for name, seg in segmenters.items():
                if name == "sam" and (not sam_measured and (sam_done >= sam_frames or noise_name != "none")):
                    continue
                a = acc[name][noise_name]
                t0 = time.perf_counter()
                try:
                    objects = seg.segment(frame)
                except Exception as exc:               # noqa: BLE001  counted, reported
                    a["refused"] += 1
                    say(f"[perception] {name} {kind}-{n} #{i} {phase} {noise_name}: refused: {exc}")
                    continue
                dt = time.perf_counter() - t0
                a["seconds"].append(dt)
                a["path_seconds"].append(dt + frame_s)
                if name == "sam" and not sam_measured:
                    sam_done += 1
                    continue                               # random weights: a rate, not a score
                drawn[name] = objects
                r = score_scene(index, truth_cloud, objects, truth)
                for key in ("true", "segments", "matched", "matched_segments", "class_right"):
                    a[key] += r[key]
                a["ious"] += r["ious"]
                for rel, v in r.get("relations", {}).items():
                    t = a["relations"].setdefault(rel, {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
                    for key in t:
                        t[key] += v[key]
            if picture is not None and noise_name == "none" and (kind, n, i, phase) == ("transport", 5, 0, "initial"):
                draw_frame(picture, images["rgb"], seg_image, index, drawn, f"{layout} scene ({kind}, {n} objects)")
        say(f"[perception] {kind}-{n} #{i} {phase}: " + ", ".join(
            f"{b} recall {acc[b]['none']['matched'] / max(1, acc[b]['none']['true']):.2f}" for b in segmenters
            if b != "sam" or sam_measured))
    if renderer is not None:
        renderer.close()
    tmp.cleanup()
    report = {"benchmark": "perception", "layout": layout, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "scenes_per_cell": scenes,
              "task_seeds": f"{SEED_BASE} + 1000*n + i", "noise": {k: vars(v) for k, v in NOISE.items()},
              "yolo_weights": str(segmenters["yolo_seg"].weights), "sam_weights": "given" if sam_measured else
              "none here: rate of a random-weight vit_b only", "backends": {}}
    for b, per_noise in acc.items():
        report["backends"][b] = {}
        for noise_name, a in per_noise.items():
            if not a["seconds"]:
                continue
            entry = {"hz": round(1.0 / float(np.median(a["seconds"])), 2),
                     "path_hz": round(1.0 / float(np.median(a["path_seconds"])), 2), "frames": len(a["seconds"]),
                     "refused_frames": a["refused"]}
            if b != "sam" or sam_measured:
                rel = metrics_from_counts(a["relations"]) if a["relations"] else {"micro_f1": None}
                entry.update({
                    "precision": round(a["matched_segments"] / max(1, a["segments"]), 3),
                    "recall": round(a["matched"] / max(1, a["true"]), 3),
                    "mean_iou": round(float(np.mean(a["ious"])) if a["ious"] else 0.0, 3),
                    "class_accuracy": round(a["class_right"] / max(1, a["matched"]), 3),
                    "relation_micro_f1": None if rel["micro_f1"] is None else round(rel["micro_f1"], 3),
                    "true_instances": a["true"], "segments": a["segments"]})
            report["backends"][b][noise_name] = entry
    return report


def draw_frame(path: Path, rgb: np.ndarray, truth: np.ndarray, index: dict, segments: dict, title: str) -> None:
    """One frame as pictures: colour, the simulator's instances, each backend's segments."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h, w = rgb.shape[:2]
    palette = np.random.default_rng(3).uniform(0.2, 1.0, (64, 3))
    panels = [("colour", rgb), ("simulator's instances", _paint(truth.reshape(h, w), palette))]
    for name, objects in segments.items():
        label = np.full(h * w, -1, np.int64)
        for k, o in enumerate(objects):
            label[[index[tuple(q)] for q in o.points.tolist()]] = k
        panels.append((f"{name}: {len(objects)} segments", _paint(label.reshape(h, w), palette)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (name, img) in zip(axes, panels):
        ax.imshow(img)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{title}: the front camera's 640x480 frame", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _paint(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    img = np.full((*label.shape, 3), 0.08)
    seen = label >= 0
    img[seen] = palette[label[seen] % len(palette)]
    return img


def summary(r: dict) -> str:
    lines = [f"## {r['layout']} scenes ({r['machine']}, {r['threads']} torch threads)", "",
             f"{r['scenes_per_cell']} fresh scenes per task x object count, as generated and after one random skill; "
             "the front camera's 640x480 RGB-D frame (depth back-projected into base_link). Match: point IoU >= 0.5. "
             "Rate: the backend alone / with the back-projection.", "",
             "| backend | noise | precision | recall | mean IoU | class accuracy | relation F1 | rate (640x480) |",
             "|---|---|---|---|---|---|---|---|"]
    for b, per_noise in r["backends"].items():
        for noise, m in per_noise.items():
            if "recall" in m:
                lines.append(f"| {b} | {noise} | {m['precision']} | {m['recall']} | {m['mean_iou']} | "
                             f"{m['class_accuracy']} | {m['relation_micro_f1']} | {m['hz']} / {m['path_hz']} Hz |")
            else:
                lines.append(f"| {b} | {noise} | - | - | - | - | - | {m['hz']} / {m['path_hz']} Hz "
                             f"({m['frames']} frames) |")
    lines += ["", f"Targets: geometric >= 10 Hz, yolo_seg >= 5 Hz. yolo_seg weights: {r['yolo_weights']}. "
              f"SAM weights: {r['sam_weights']}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=5, help="scenes per task and object count")
    p.add_argument("--yolo-weights", default="", help="YOLO segmentation weights ('' = the shipped model)")
    p.add_argument("--sam-checkpoint", default="", help="SAM vit_b weights (absent here: its rate only)")
    p.add_argument("--sam-frames", type=int, default=2, help="frames timed with a random-weight vit_b")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layouts", nargs="+", default=["real_scale", "paper"], choices=LAYOUTS,
                   help="task-scene layouts to draw the scenes in (world config)")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    RESULTS.mkdir(exist_ok=True)
    report = {"benchmark": "perception",
              "command": "python benchmarks/perception.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "layouts": {}}
    for layout in a.layouts:
        picture = RESULTS / "perception.png" if layout == a.layouts[0] else None
        report["layouts"][layout] = run(a.scenes, a.seed, a.yolo_weights, a.sam_checkpoint, a.sam_frames, layout,
                                        picture)
    (RESULTS / "perception.json").write_text(json.dumps(report, indent=1) + "\n")
    text = "# Segmentation against the simulator's truth\n\n`" + report["command"] + "`\n\n" + "\n".join(
        summary(r) for r in report["layouts"].values())
    (RESULTS / "perception.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
