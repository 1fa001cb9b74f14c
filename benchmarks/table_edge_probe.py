"""Where does each given model believe table_b ends, including the band just past its far edge?

``failure_mode_probe``'s ``table_b_edges`` grid (7 x 7 points, ±0.36 m around table_b's centre,
0.12 m apart) steps over the strip just past the table's edge (half-size 0.25 m): its nearest
off-table points lie 0.11 m out. The organize-7 plans of the README's 5-minute recipe fail in
that strip (a cup placed 0.02-0.04 m past table_b's far y edge, which Γ calls above table_b), so
this probe adds a FAR-EDGE BAND: placements at x offsets of the grid and y offsets 0.13-0.37 m
in 0.03 m steps (table_b's far y edge at 0.25 m), on the same fresh scenes (task seed
90000 + 1000·n + i, i < ``--scenes``; MuJoCo decides whether the container ends above table_b).

Per checkpoint (``NAME=PATH``): the lesson (contents predicted to ride along with the picked
container, right / literals) and, on the grid and on the band, Γ's false "above" (off the table,
called above) and false "not above" (on it, called not).

``--plans NAME`` also runs ``--trials`` planned trials with that checkpoint on DEVELOPMENT seeds
(anchor_study's: task 70000 + 1000·n + i, trial seed i) and, at each trial's first failed step,
scores every checkpoint's p(above(target, table_b)) for the failed action on the observation the
robot had: is the error the child's, or already its parent's?

Usage (about 1 min for organize 7 on 2 cores, most of it MuJoCo; ``--plans`` 2-3 min more for 12
trials)::

    python benchmarks/table_edge_probe.py --task organize --objects 7 \\
        parent=/tmp/f2p-tr/pre.pt child=/tmp/f2p-anchor/.../model.pt --plans child

Writes ``--out``.{json,md} (default benchmarks/results/table_edge_probe).
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import failure_mode_probe as probe  # noqa: E402
from anchor_study import DEV_SEED_BASE  # noqa: E402
from fail2progress import evaluation_task_seed  # noqa: E402
from f2p_common.vocabulary import SKILLS  # noqa: E402
from f2p_failure.episode import TrialConfig, run_trial  # noqa: E402
from f2p_sim.config import load_world_config  # noqa: E402
from f2p_sim.mujoco_backend import MujocoBackend  # noqa: E402
from f2p_sim.observation import Camera  # noqa: E402
from f2p_sim.tasks import make_task  # noqa: E402
from f2p_skill_effect.checkpoint import load_model  # noqa: E402
from f2p_skill_effect.model import Observation, SkillBatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BAND_Y = np.round(np.arange(0.13, 0.371, 0.03), 2)   # table_b's far y edge at +0.25 m


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", metavar="NAME=PATH")
    p.add_argument("--task", default="organize", choices=["transport", "organize"])
    p.add_argument("--objects", type=int, default=7, choices=[3, 5, 7])
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--plans", metavar="NAME", default=None,
                   help="run --trials planned development trials with checkpoint NAME and score every checkpoint "
                        "at each first failed pick_place")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "table_edge_probe"))
    a = p.parse_args(argv)
    named = []
    for c in a.checkpoints:
        name, sep, path = c.partition("=")
        if not sep or not name or not path:
            p.error(f"a checkpoint is NAME=PATH (got {c!r})")
        if not Path(path).is_file():
            p.error(f"no checkpoint at {path}")
        named.append((name, path))
    a.checkpoints = named
    if a.plans is not None and a.plans not in dict(named):
        p.error(f"--plans names one of the checkpoints (got {a.plans!r})")
    if a.trials < 1 or a.workers < 1:
        p.error("--trials and --workers must be >= 1")
    return a


_WORKER: dict = {}


def _worker_init() -> None:
    torch.set_num_threads(1)
    _WORKER["backend"] = MujocoBackend(load_world_config())


def _first_failure(path: str, kind: str, n: int, i: int) -> tuple[str, object]:
    """(outcome, failure event or None) of development trial i planned with checkpoint ``path``."""
    model, meta = load_model(path)
    backend = _WORKER["backend"]
    task = make_task(kind, n, evaluation_task_seed(n, i, DEV_SEED_BASE), backend.cfg)
    r = run_trial(model, meta.version, task, backend, TrialConfig(), seed=i)
    return ("success" if r.success else r.outcome), r.failure


def p_above_table_b(model, event, n_points: int) -> float | None:
    """Γ's p(above(target, table_b)) after the event's failed action, from its observation before."""
    if "table_b" not in event.segment_ids:
        return None
    o = Observation.from_clouds(event.observation_before, n_points, seed=0, max_objects=model.cfg.max_objects)
    skill = SkillBatch(torch.tensor([list(SKILLS).index(event.skill)]), torch.tensor([event.target]),
                       torch.tensor([event.params], dtype=torch.float32))
    with torch.no_grad():
        z = model.step(model.encode(o), o.mask, skill)
        return float(model.detect(z, o.mask).prob("above", event.target, event.segment_ids.index("table_b")))


def planned_failures(a, models: dict) -> dict:
    path = dict(a.checkpoints)[a.plans]
    jobs = [(path, a.task, a.objects, i) for i in range(a.trials)]
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            runs = list(pool.map(_first_failure, *zip(*jobs)))
    else:
        _worker_init()
        runs = [_first_failure(*job) for job in jobs]
    failures = []
    for i, (outcome, event) in enumerate(runs):
        if event is None:
            continue
        ids = event.segment_ids
        failures.append({
            "trial": i, "task_seed": evaluation_task_seed(a.objects, i, DEV_SEED_BASE), "outcome": outcome,
            "skill": event.skill, "target": ids[event.target], "params": [round(float(x), 3) for x in event.params],
            "p_above_table_b": {name: (None if event.skill != "pick_place" else
                                       round(p_above_table_b(m, event, pts), 3)) for name, (m, pts) in models.items()},
            "mismatches": [{"predicate": x["predicate"], "subject": ids[x["subject"]],
                            "object": None if x["object"] is None else ids[x["object"]],
                            "predicted": round(float(x["predicted"]), 3), "observed": bool(x["observed"])}
                           for x in event.mismatches]})
    outcomes = collections.Counter(o for o, _ in runs)
    return {"checkpoint": a.plans, "trials": a.trials, "outcomes": dict(outcomes),
            "seeds": f"task {DEV_SEED_BASE} + 1000*n + i, trial i, i < {a.trials}", "failures": failures}


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t0 = time.perf_counter()
    backend = MujocoBackend(load_world_config())
    camera = Camera.from_config(backend.cfg, TrialConfig().camera)
    lesson_cases = probe.probe_cases(a.task, a.objects, a.scenes, backend, camera)
    grid = probe.edge_cases(a.task, a.objects, a.scenes, backend, camera)
    band = probe.edge_cases(a.task, a.objects, a.scenes, backend, camera, grid_y=BAND_Y)
    rows, models = [], {}
    for name, path in a.checkpoints:
        model, meta = load_model(path)
        pts = int(meta.training_data.get("points_per_object", 128))
        models[name] = (model, pts)
        lesson = {k: [v["correct"], v["literals"]] for k, v in probe.score(model, lesson_cases, pts).items()}
        sides = {}
        for side, cases in (("grid", grid), ("band", band)):
            e = probe.score_edges(model, cases, pts)
            e.pop("example")
            sides[side] = e
        rows.append({"name": name, "checkpoint": path, "version": meta.version, "parent": meta.parent_version,
                     "lesson": lesson, **sides})
        print(f"[table-edge-probe] {name}: grid false above {sides['grid']['false_above']}/{sides['grid']['off_table']}, "
              f"band false above {sides['band']['false_above']}/{sides['band']['off_table']}", flush=True)
    result = {"command": "python benchmarks/table_edge_probe.py " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
              "task": a.task, "objects": a.objects, "scenes": a.scenes,
              "seeds": f"task 90000 + 1000*n + i, i < {a.scenes}",
              "grid_offsets_m": probe.EDGE_GRID.round(2).tolist(), "band_y_offsets_m": BAND_Y.tolist(),
              "results": rows}
    if a.plans is not None:
        result["plans"] = planned_failures(a, models)
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(f"[table-edge-probe] wrote {out.with_suffix('.json')} and .md ({result['total_seconds']:.0f} s)", flush=True)
    return 0


def markdown(result: dict) -> str:
    fmt_lesson = lambda d: ", ".join(f"{k.split('(')[1].split()[0]}-item {c}/{t}" for k, (c, t) in sorted(d.items())
                                     if k.startswith("contents_inside_target")) or "-"
    lines = [f"# Where Γ believes table_b ends: {result['task']}, {result['objects']} objects", "",
             f"`{result['command']}` — {result['machine']['platform']}, {result['machine']['cpu_count']} CPUs; "
             f"{result['scenes']} fresh scenes ({result['seeds']}).", "",
             f"Grid: failure_mode_probe's table_b_edges, x and y offsets {result['grid_offsets_m']} m from table_b's "
             f"centre. Band: x offsets as the grid, y offsets {result['band_y_offsets_m']} m (table_b's far y edge at "
             "0.25 m). Points the pick_place box cannot reach are left out. `false above`: off the table (MuJoCo) "
             "but called above table_b (p ≥ 0.5); `false not above`: on it, called not. `lesson`: contents predicted "
             "to ride along with the picked container.", "",
             "| model | version | lesson | grid false above | grid false not above | band false above | band false not above |",
             "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        g, b = r["grid"], r["band"]
        lines.append(f"| {r['name']} | {r['version']} | {fmt_lesson(r['lesson'])} | {g['false_above']}/{g['off_table']} | "
                     f"{g['false_not_above']}/{g['on_table']} | {b['false_above']}/{b['off_table']} | "
                     f"{b['false_not_above']}/{b['on_table']} |")
    plans = result.get("plans")
    if plans:
        names = [r["name"] for r in result["results"]]
        lines += ["", f"## First failures of {plans['trials']} planned trials with `{plans['checkpoint']}` "
                      f"(development seeds: {plans['seeds']})", "",
                  "Outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(plans["outcomes"].items())) + ". "
                  "p above: each model's p(above(target, table_b)) for the failed action, on the robot's "
                  "observation before it.", "",
                  "| trial | skill | target | params | " + " | ".join(f"p above: {n}" for n in names)
                  + " | mismatches (predicted → observed) |",
                  "|---|---|---|---|" + "---|" * len(names) + "---|"]
        for f in plans["failures"]:
            mm = "; ".join(f"{x['predicate']}({x['subject']}{', ' + x['object'] if x['object'] else ''}) "
                           f"{x['predicted']:.2f} → {x['observed']}" for x in f["mismatches"][:3])
            ps = " | ".join("-" if f["p_above_table_b"][n] is None else f"{f['p_above_table_b'][n]:.2f}" for n in names)
            lines.append(f"| {f['trial']} | {f['skill']} | {f['target']} | {', '.join(f'{x:.2f}' for x in f['params'])} "
                         f"| {ps} | {mm} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
