"""Can the benchmark's evaluation scenes be solved at all? The scripted reference solution
(``f2p_sim.reference``: ground-truth geometry, the robot's own skills and MuJoCo contact
physics) on exactly the scenes ``benchmarks/fail2progress.py`` evaluates every method on
(task seed 30000 + 1000·n + i, i < trials). Part of ``make bench-f2p``.

A scene the reference solves and a method fails is the method's (its model's) failure, not
the task's. Packing's reference can fail where a pushed row buckles, so for packing its rate
is a lower bound on what can be solved.

Writes benchmarks/results/task_feasibility.{json,md}; the markdown sets each cell beside the
best method of ``fail2progress.json`` when that file is there.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from fail2progress import evaluation_task_seed
from f2p_sim.config import load_world_config
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.reference import ReferenceSolutionError, solve
from f2p_sim.tasks import OBJECT_COUNTS, TASK_KINDS, make_task

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100, help="evaluation scenes per task and object count")
    p.add_argument("--tasks", default=",".join(TASK_KINDS), help="comma-separated task kinds")
    p.add_argument("--out", default=str(RESULTS), help="folder for task_feasibility.{json,md}")
    p.add_argument("--compare", default=str(RESULTS / "fail2progress.json"),
                   help="bench-f2p results to set beside the reference ('' for none)")
    return p.parse_args(argv)


def run_cell(backend, kind: str, n: int, trials: int) -> dict:
    wins, unmet, errors, steps, t0 = 0, collections.Counter(), [], collections.Counter(), time.perf_counter()
    for i in range(trials):
        task = make_task(kind, n, evaluation_task_seed(n, i), backend.cfg)
        try:
            done = solve(task, backend)
        except ReferenceSolutionError as e:
            errors.append({"scene": i, "error": str(e)})
            continue
        steps[len(done)] += 1
        missing = task.unmet(backend.relations(), [s.name for s in backend.segments])
        wins += not missing
        unmet.update({lit.predicate for lit in missing})
    return {"successes": wins, "trials": trials, "success_rate": wins / trials,
            "unsolved_by_unmet_predicate": dict(unmet), "reference_errors": errors,
            "steps": {str(k): v for k, v in sorted(steps.items())},
            "seconds_per_scene": (time.perf_counter() - t0) / trials}


def best_methods(f2p: dict, kind: str, n: int) -> str:
    """The best method(s) of a fail2progress.json cell, as 'name(s) successes/trials'."""
    cells = [(m, r["success"][str(n)]) for m, r in f2p.get("tasks", {}).get(kind, {}).get("methods", {}).items()
             if str(n) in r.get("success", {})]
    if not cells:
        return "not in the bench"
    top = max(c["success_rate"] for _, c in cells)
    names = [m for m, c in cells if c["success_rate"] == top]
    if top == 0:
        return f"none: all {len(cells)} methods 0/{cells[0][1]['trials']}"
    best = dict(cells)[names[0]]
    return f"{', '.join(names)} {best['successes']}/{best['trials']}"


def write_markdown(result: dict, f2p: dict | None, path: Path) -> None:
    lines = ["# Task feasibility: the scripted reference on the benchmark's evaluation scenes", "",
             f"Command: `{result['command']}`; {result['trials']} scenes per cell (task seeds "
             f"{result['seeds']}); machine {result['machine']['platform']}, {result['machine']['cpu_count']} cores. "
             "The reference (`f2p_sim.reference`) reads the simulator's true boxes and solves each scene with the "
             "robot's skills: transport and organize carry each container by table_a → table_b; packing pushes the "
             "shelf row together from its first item, then places the new item against the row. A scene it solves "
             "is solvable; for packing its rate is a lower bound (a pushed row can buckle).", "",
             "| task | objects | reference solves | unsolved by (unmet predicate: scenes) | best method in bench-f2p |",
             "|---|---|---|---|---|"]
    for kind, cells in result["tasks"].items():
        for n, c in cells.items():
            why = ", ".join(f"{k}: {v}" for k, v in sorted(c["unsolved_by_unmet_predicate"].items()))
            if c["reference_errors"]:
                why = (why + ", " if why else "") + f"step outside its box: {len(c['reference_errors'])}"
            best_s = best_methods(f2p, kind, int(n)) if f2p else "no bench-f2p results"
            lines.append(f"| {kind} | {n} | {c['successes']}/{c['trials']} | {why or '-'} | {best_s} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    a = parse_args(argv)
    kinds = [k for k in a.tasks.split(",") if k]
    unknown = sorted(set(kinds) - set(TASK_KINDS))
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; known: {', '.join(TASK_KINDS)}")
    backend = MujocoBackend(load_world_config())
    result = {"benchmark": "task_feasibility",
              "command": " ".join(["python benchmarks/task_feasibility.py", *map(shlex.quote, argv or sys.argv[1:])]),
              "trials": a.trials, "seeds": "30000 + 1000*n + i, i < trials (bench-f2p's evaluation scenes)",
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()}, "tasks": {}}
    for kind in kinds:
        result["tasks"][kind] = {}
        for n in OBJECT_COUNTS:
            c = run_cell(backend, kind, n, a.trials)
            result["tasks"][kind][str(n)] = c
            print(f"[task-feasibility] {kind} {n} objects: reference solves {c['successes']}/{c['trials']} "
                  f"({c['seconds_per_scene']:.2f} s/scene)", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "task_feasibility.json").write_text(json.dumps(result, indent=1) + "\n")
    f2p = json.loads(Path(a.compare).read_text()) if a.compare and Path(a.compare).is_file() else None
    write_markdown(result, f2p, out / "task_feasibility.md")
    print(f"[task-feasibility] wrote {out / 'task_feasibility.json'} and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
