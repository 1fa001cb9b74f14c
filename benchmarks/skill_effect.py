"""Planning latency of the skill-effect planner (paper 000 A.11.2 planning; Fig. 6 context).

A randomly initialised full-size PointsToPlansModel (A.11.2 dimensions), a 5-object scene,
a 3-step skeleton, K shooting samples rolled out in one batch plus CEM iterations, on CPU.
Reports median and p90 wall time of ``plan`` over repeated runs; target ≤ 1 s median.
Writes benchmarks/results/skill_effect.{json,md}.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from f2p_skill_effect.model import ModelConfig, Observation, PointsToPlansModel
from f2p_skill_effect.planner import PlannerConfig, plan


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--objects", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = PointsToPlansModel(ModelConfig()).eval()
    rng = np.random.default_rng(0)
    clouds = [rng.normal(rng.uniform(-0.3, 0.3, 3), 0.02, (512, 3)) for _ in range(a.objects)]
    obs = Observation.from_clouds(clouds, 256, seed=0)
    skeleton = [("pick_place", 0), ("push", 1), ("pick_place", 2)]
    goal = [("above", 0, 1), ("left", 2, 3)]
    cfg = PlannerConfig(samples=a.samples, iterations=a.iterations, seed=0)
    plan(model, obs, goal, skeleton, cfg)   # warm-up (allocator, lazy init)
    times, enc = [], []
    for r in range(a.repeats):
        res = plan(model, obs, goal, skeleton, PlannerConfig(samples=a.samples, iterations=a.iterations, seed=r))
        times.append(res.timing["total_s"])
        enc.append(res.timing["encode_s"])
    t = np.array(times)
    out = {
        "benchmark": "skill_effect_planning_latency",
        "command": " ".join([sys.executable.split("/")[-1]] + sys.argv),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": a.threads,
                    "device": "cpu"},
        "setup": {"model": "PointsToPlansModel full size (random init)", "objects": a.objects,
                  "points_per_object": 256, "horizon": len(skeleton), "samples": a.samples,
                  "cem_iterations": a.iterations, "rollouts_per_plan": res.evaluated_samples, "repeats": a.repeats,
                  "seeds": list(range(a.repeats))},
        "results": {"median_s": float(np.median(t)), "p90_s": float(np.percentile(t, 90)),
                    "min_s": float(t.min()), "max_s": float(t.max()), "encode_median_s": float(np.median(enc)),
                    "target_median_s": 1.0, "meets_target": bool(np.median(t) <= 1.0)},
        "times_s": [float(x) for x in t],
    }
    d = Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "skill_effect.json").write_text(json.dumps(out, indent=1) + "\n")
    r = out["results"]
    (d / "skill_effect.md").write_text(
        "# Skill-effect planning latency (CPU)\n\n"
        f"`{out['command']}` on {out['machine']['processor']}, {out['machine']['cpu_count']} cores, "
        f"torch {torch.__version__} ({a.threads} threads)\n\n"
        "| horizon | samples | CEM iters | rollouts | median (s) | p90 (s) | encode (s) | target ≤ 1 s |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {len(skeleton)} | {a.samples} | {a.iterations} | {res.evaluated_samples} | {r['median_s']:.3f} | "
        f"{r['p90_s']:.3f} | {r['encode_median_s']:.3f} | {'yes' if r['meets_target'] else 'no'} |\n")
    print(json.dumps(out["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
