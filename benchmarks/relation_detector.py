"""Relation detection against the simulator's ground truth (paper 000 §6: relation-detection F1,
reported 0.92), per backend of the relation detector node.

Fresh scenes (task seeds 60000 + 1000·n + i, never a training, failure or evaluation seed) of
every task and object count, each seen twice: as generated, and after one random skill drawn
as the training data draws them (``f2p_datasets.datagen.sample_action``), so that relations other
than "inside the container on table_a" occur. Each state goes through what the robot graph
runs: the simulated camera's cloud, the ``labelled_cloud`` segmentation, then each detector
backend; the truth is the simulator's relations (exact boxes and contacts). Objects the camera
does not see enough of (fewer than the segmenter's ``min_points``) have no segment: the
comparison runs over the objects perceived, and the report counts the others.

``--layout real_scale`` draws the scenes with real furniture (tables 0.5-2 m, 0.4-0.9 m high)
and a wider range of object sizes (``f2p_sim.config``), as a robot sees them.

``python benchmarks/relation_detector.py [--layout real_scale]`` writes
results/relation_detector.{json,md} (results/relation_detector_real_scale.{json,md}).
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
import torch

from f2p_common.interfaces import SegmentedScene, SkillCall
from f2p_common.vocabulary import RELATIONS
from f2p_perception.segmentation import LabelledCloudSegmenter, SensorFrame
from f2p_relations.detectors import GeometricDetector, LearnedDetector
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_datasets.datagen import sample_action
from f2p_sim.robot import SimRobot, SimRobotError
from f2p_sim.tasks import OBJECT_COUNTS, TASK_KINDS
from f2p_skill_effect.checkpoint import checkpoint_path
from f2p_skill_effect.metrics import metrics_from_counts, relation_counts

RESULTS = Path(__file__).resolve().parent / "results"
SEED_BASE = 60000


def scenarios(robot: SimRobot, scenes: int, rng: np.random.Generator, seed_base: int = SEED_BASE):
    """Puts ``robot`` in each benchmark state in turn: every task and object count, ``scenes``
    fresh scenes (task seed ``seed_base + 1000 n + i``), each as generated and after one random
    skill drawn as the training data draws them; yields (task, n, i, phase) in each state."""
    for kind in TASK_KINDS:
        for n in OBJECT_COUNTS:
            for i in range(scenes):
                robot.reset_task(kind, n, seed_base + 1000 * n + i)
                for phase in ("initial", "after_skill"):
                    if phase == "after_skill":
                        skill, target, params = sample_action(rng, robot.backend, 0.6)
                        try:
                            robot.execute(SkillCall(skill, (robot.scene.object_ids[target],), params))
                        except SimRobotError:
                            continue
                    yield kind, n, i, phase


def states(robot: SimRobot, scenes: int, seed: int):
    """(task, n, phase, perceived scene, truth over the perceived objects, unseen object count)."""
    segmenter = LabelledCloudSegmenter()
    for kind, n, _i, phase in scenarios(robot, scenes, np.random.default_rng(seed)):
        objects = segmenter.segment(SensorFrame(robot.camera_cloud()))
        truth = robot.relations()
        keep = [truth.object_ids.index(o.id) for o in objects]
        truth_seen = (truth.unary[keep], truth.binary[np.ix_(keep, keep)])
        yield kind, n, phase, SegmentedScene(objects, "base_link"), truth_seen, len(truth.object_ids) - len(keep)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=20, help="scenes per task and object count")
    p.add_argument("--checkpoints", nargs="+", default=None,
                   help="models of the learned backend, paths or shipped file names (default: the shipped "
                        "pre-trained, and on real_scale scenes also skill_effect_real_scale.pt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", default="paper", choices=LAYOUTS, help="task-scene layout of the world config")
    p.add_argument("--out", default=None, help="results path without suffix (default: results/relation_detector"
                                               "[_<layout>])")
    a = p.parse_args(argv)
    a.out = a.out or str(RESULTS / ("relation_detector" + ("" if a.layout == "paper" else f"_{a.layout}")))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    names = a.checkpoints or (["skill_effect_pretrained.pt"]
                              + (["skill_effect_real_scale.pt"] if a.layout == "real_scale" else []))
    detectors = {"geometric": GeometricDetector()}
    for name in names:
        detectors[f"learned ({Path(name).stem})"] = LearnedDetector(checkpoint_path(name))
    counts = {name: {} for name in detectors}
    seconds = {name: [] for name in detectors}
    per_task = {name: {} for name in detectors}
    n_states, unseen_objects, robot = 0, 0, SimRobot(load_world_config(layout=a.layout))
    t_start = time.perf_counter()
    for kind, n, phase, scene, (tu, tb), unseen in states(robot, a.scenes, a.seed):
        n_states += 1
        unseen_objects += unseen
        mask = np.ones((1, len(scene.objects)), bool)
        for name, det in detectors.items():
            t0 = time.perf_counter()
            state = det.detect(scene)
            seconds[name].append(time.perf_counter() - t0)
            c = relation_counts(state.unary[None], state.binary[None], tu[None], tb[None], mask)
            for target in (counts[name], per_task[name].setdefault(kind, {})):
                for rel, v in c.items():
                    acc = target.setdefault(rel, {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
                    for key in acc:
                        acc[key] += v[key]
    metrics = {name: metrics_from_counts(c) for name, c in counts.items()}
    result = {
        "benchmark": "relation_detector",
        "command": "python benchmarks/relation_detector.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "states": n_states, "scenes_per_cell": a.scenes, "layout": a.layout, "task_seeds": f"{SEED_BASE} + 1000*n + i",
        "objects_not_perceived": unseen_objects,
        "learned_checkpoints": {k: d.version for k, d in detectors.items() if k != "geometric"},
        "paper_f1": 0.92, "seconds": time.perf_counter() - t_start,
        "backends": {name: {"micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"], "micro_precision": m["micro_precision"],
                            "micro_recall": m["micro_recall"],
                            "per_relation_f1": {r: m["per_relation"][r]["f1"] for r in RELATIONS},
                            "per_task_micro_f1": {k: metrics_from_counts(v)["micro_f1"] for k, v in per_task[name].items()},
                            "latency_ms_median": 1000 * float(np.median(seconds[name])),
                            "latency_ms_p90": 1000 * float(np.percentile(seconds[name], 90))}
                     for name, m in metrics.items()},
    }
    best = max(result["backends"], key=lambda k: result["backends"][k]["micro_f1"])
    result["best_backend"] = best
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    b = result["backends"]
    lines = [f"# Relation detection against the simulator's ground truth ({a.layout} scenes)", "",
             f"`{result['command']}`: {n_states} states (every task x 3/5/7 objects x {a.scenes} fresh scenes, each as "
             f"generated and after one random skill), through the simulated camera and the labelled_cloud segmentation; "
             f"{unseen_objects} objects not perceived (too few points) left out. Learned backend models: "
             + ", ".join(f"{k} `{v}`" for k, v in result["learned_checkpoints"].items())
             + f". Paper 000: F1 0.92. {result['machine']['cpu_count']} cores, "
             f"{result['seconds']:.0f} s.", "",
             "| relation | " + " | ".join(b) + " |", "|---|" + "---|" * len(b)]
    for r in RELATIONS:
        lines.append(f"| {r} | " + " | ".join("–" if b[k]["per_relation_f1"][r] is None else f"{b[k]['per_relation_f1'][r]:.3f}"
                                             for k in b) + " |")
    lines.append("| **micro F1** | " + " | ".join(f"**{b[k]['micro_f1']:.3f}**" for k in b) + " |")
    lines.append("| macro F1 | " + " | ".join(f"{b[k]['macro_f1']:.3f}" for k in b) + " |")
    for kind in TASK_KINDS:
        lines.append(f"| micro F1, {kind} | " + " | ".join(f"{b[k]['per_task_micro_f1'][kind]:.3f}" for k in b) + " |")
    lines.append("| latency median / p90 (ms) | " + " | ".join(
        f"{b[k]['latency_ms_median']:.1f} / {b[k]['latency_ms_p90']:.1f}" for k in b) + " |")
    lines += ["", f"Best: **{best}** (the relation detector node's default backend)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
