"""Does a model predict the held-out failure mode on FRESH scenes? A one-step probe of the
checkpoints ``benchmarks/fail2progress.py`` learned (``make bench-f2p`` first).

The pre-training data never shows contents moving with their container
(``DatagenParams.hold_out_failure_modes``); Fail2Progress and its baselines learn it from
one failure. This probe asks each model, on fresh scenes (task seeds 90000 + 1000·n + i, never
a failure's or an evaluation's), about one pick-and-place of each loaded container (the bin of
transport, every cup of organize) onto ``table_b``, executed in MuJoCo for the truth, and scores
Γ's relation decisions (p ≥ 0.5) against the simulator per group of literals:

``contents_inside_target``  inside(item, target) for the target's contents (they ride along)
``target_above_table_b``    above(target, table_b)
``other_containers_stay``   above(c, table_b) for every other loaded container (they stay)
``other_contents_inside``   inside(item, c) for the contents of every other container

A success-rate cell of the benchmark needs all four right for every container a plan moves;
this splits a zero into which prediction the learned model gets wrong.

The ``table_b_edges`` part asks where each model believes ``table_b`` ends: on the same fresh
scenes, each loaded container is placed (``dz`` 0.1) at a 7 x 7 grid of points around
``table_b``'s centre (``EDGE_GRID``: ±0.36 m, the table's half-size is 0.25 m, so the outer
ring is off the table and the ring inside it on its edge); the simulator says whether
above(target, table_b) holds. ``false_above`` counts the placements Γ calls "above" that do
not end on the table: those are what a planner maximising Γ's goal probability exploits.
Placements beyond the pick_place box are left out (no planner can choose them). One case's
grid of Γ's p(above) is drawn per model in ``failure_mode_probe_edges.png``.

The probe's placement is fixed; a planner is not: it searches the skill parameters for the
plan Γ scores best, so it finds the placements where Γ errs. The second part therefore runs
``--trials`` planned trials per cell (task seeds 95000 + 1000·n + i, trial seed i; never an
evaluation's or a failure's) with the models of ``ANATOMY_METHODS`` and tallies each trial's
FIRST detected failure: at which step, whether the plan leaves a loaded container unmoved (it
counts on Γ's prediction that another container comes along), and which goal literals Γ
mispredicted, in the groups above plus ``order`` (left/right between containers) and
``other`` (any other goal literal).

``original`` is the run's parent, the path bench-f2p records in ``<work>/progress.json``.

Usage (``make bench-f2p`` runs it after the benchmark; 16 minutes on 2 cores, most of
it in the planned organize-7 trials; ``--trials 0`` skips them)::

    python benchmarks/failure_mode_probe.py --work /tmp/f2p-bench
    python benchmarks/failure_mode_probe.py --work /tmp/f2p-bench-paper \\
        --out benchmarks/results/failure_mode_probe_paper       # after fail2progress.py --recipe paper

Writes benchmarks/results/failure_mode_probe.{json,md} and failure_mode_probe_edges.png.
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, CONTAINER_CLASSES, SKILLS, skill_index
from f2p_sim.config import load_world_config
from f2p_sim.episode import TrialConfig, run_trial
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, observe
from f2p_sim.tasks import make_task
from f2p_skill_effect.checkpoint import load_model
from f2p_skill_effect.model import Observation, SkillBatch

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("contents_inside_target", "target_above_table_b", "other_containers_stay", "other_contents_inside")
METHODS = ("sampling", "gradient", "fail2progress", "domain_randomization")
#: Models whose planned trials are dissected: the shipped one and the paper 000 §6 targeted methods.
ANATOMY_METHODS = ("original", "sampling", "gradient", "fail2progress")
ANATOMY_GROUPS = (*GROUPS, "order", "other")
INSIDE, ABOVE = BINARY_RELATIONS.index("inside"), BINARY_RELATIONS.index("above")
#: The placement: the target's centre to table_b's centre + a uniform jitter (m) per axis, lifted DZ.
JITTER, DZ = 0.08, 0.1
#: Placement offsets (m, per axis) from table_b's centre for the table_b_edges grid.
EDGE_GRID = np.linspace(-0.36, 0.36, 7)


def fresh_scene(kind: str, n: int, i: int, backend):
    """Probe scene i (task seed 90000 + 1000·n + i) loaded: (task, object specs by name,
    relations, segment names, indices of the loaded containers)."""
    task = make_task(kind, n, 90000 + 1000 * n + i, backend.cfg)
    backend.load(task.scene)
    rel0 = backend.relations()
    loaded = [c for c, s in enumerate(backend.segments)
              if s.cls in CONTAINER_CLASSES and rel0.binary[:, c, INSIDE].any()]
    return task, {o.name: o for o in task.scene.objects}, rel0, [s.name for s in backend.segments], loaded


def probe_cases(kind: str, n: int, scenes: int, backend, camera, seed: int = 0) -> list[dict]:
    """Per fresh scene and loaded container: the observation before, the action and the true
    relations after (the simulator's)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(scenes):
        task, spec, rel0, names, loaded = fresh_scene(kind, n, i, backend)
        for c in loaded:
            backend.load(task.scene)
            obs = observe(backend, camera, rng=np.random.default_rng(i))
            if (obs.counts == 0).any():
                continue
            clouds = [obs.segment_cloud(k).astype(np.float32) for k in range(len(names))]
            goal = np.asarray(spec["table_b"].pos[:2]) + rng.uniform(-JITTER, JITTER, 2)
            box = SKILLS["pick_place"]
            params = [float(v) for v in np.clip([goal[0] - spec[names[c]].pos[0], goal[1] - spec[names[c]].pos[1], DZ],
                                                box.low, box.high)]
            backend.execute_skill("pick_place", c, params)
            rel1 = backend.relations()
            others = [d for d in loaded if d != c]
            literals = {
                "contents_inside_target": [(k, c, INSIDE) for k in np.flatnonzero(rel0.binary[:, c, INSIDE])],
                "target_above_table_b": [(c, names.index("table_b"), ABOVE)],
                "other_containers_stay": [(d, names.index("table_b"), ABOVE) for d in others],
                "other_contents_inside": [(k, d, INSIDE) for d in others for k in np.flatnonzero(rel0.binary[:, d, INSIDE])],
            }
            truth = {g: [bool(rel1.binary[a, b, r]) for a, b, r in lits] for g, lits in literals.items()}
            cases.append({"scene_seed": task.seed, "target": names[c], "params": params, "clouds": clouds,
                          "target_index": c, "literals": literals, "truth": truth})
    return cases


def edge_cases(kind: str, n: int, scenes: int, backend, camera, grid_x=EDGE_GRID, grid_y=EDGE_GRID) -> list[dict]:
    """Per fresh scene and loaded container: the observation before and, for every placement of
    the target at table_b's centre + (grid_x[u], grid_y[v]), the action and whether
    above(target, table_b) holds after it (the simulator's)."""
    cases = []
    box = SKILLS["pick_place"]
    for i in range(scenes):
        task, spec, _, names, loaded = fresh_scene(kind, n, i, backend)
        table_b = names.index("table_b")
        obs = observe(backend, camera, rng=np.random.default_rng(i))
        if (obs.counts == 0).any():
            continue
        clouds = [obs.segment_cloud(k).astype(np.float32) for k in range(len(names))]
        centre = np.asarray(spec["table_b"].pos[:2])
        for c in loaded:
            start = np.asarray(spec[names[c]].pos[:2])
            params, truth, cells = [], [], []
            for u, du in enumerate(grid_x):
                for v, dv in enumerate(grid_y):
                    a = [*(centre + (du, dv) - start), DZ]
                    if not all(lo <= x <= hi for x, lo, hi in zip(a, box.low, box.high)):
                        continue   # beyond the skill's reach: no planner can choose it either
                    backend.reset()   # the settled scene again (as load, without recompiling)
                    backend.execute_skill("pick_place", c, [float(x) for x in a])
                    params.append(a)
                    truth.append(bool(backend.relations().binary[c, table_b, ABOVE]))
                    cells.append(u * len(grid_y) + v)
            if not params:
                continue   # no point of this grid within the box from where this container stands
            cases.append({"scene_seed": task.seed, "target": names[c], "target_index": c, "table_b": table_b,
                          "clouds": clouds, "params": np.asarray(params, np.float32), "truth": np.asarray(truth),
                          "cells": cells, "grid_cells": len(grid_x) * len(grid_y)})
    return cases


def score_edges(model, cases: list[dict], n_points: int) -> dict:
    """Γ's above(target, table_b) decisions (p ≥ 0.5) over the placement grids: accuracy,
    false "above" (off the table) and false "not above", and one case's p grid (``example``)."""
    skill = skill_index("pick_place")
    correct = false_above = off_table = false_not = on_table = 0
    example = None
    for case in cases:
        g = len(case["params"])
        o = Observation.from_clouds(case["clouds"], n_points, seed=0, max_objects=model.cfg.max_objects)
        with torch.no_grad():
            z = model.encode(o)
            z = model.step(z.expand(g, -1, -1), o.mask.expand(g, -1),
                           SkillBatch(torch.full((g,), skill), torch.full((g,), case["target_index"]),
                                      torch.from_numpy(case["params"])))
            p = model.detect(z, o.mask.expand(g, -1)).prob("above", case["target_index"], case["table_b"]).numpy()
        said, truth = p >= 0.5, case["truth"]
        correct += int((said == truth).sum())
        false_above += int((said & ~truth).sum())
        off_table += int((~truth).sum())
        false_not += int((~said & truth).sum())
        on_table += int(truth.sum())
        if example is None or len(case["cells"]) > sum(v is not None for v in example["p"]):
            # the example drawn: the case reaching most of the grid (row: x offset, column: y
            # offset; None where out of reach)
            g = case.get("grid_cells", len(EDGE_GRID) ** 2)
            example = {"scene_seed": case["scene_seed"], "target": case["target"], "p": [None] * g, "truth": [None] * g}
            for k, cell in enumerate(case["cells"]):
                example["p"][cell], example["truth"][cell] = round(float(p[k]), 3), bool(truth[k])
    total = sum(len(c["params"]) for c in cases)
    return {"placements": total, "correct": correct, "accuracy": correct / total if total else None,
            "false_above": false_above, "off_table": off_table, "false_not_above": false_not, "on_table": on_table,
            "example": example}


def score(model, cases: list[dict], n_points: int) -> dict:
    """Per group: correct decisions, literals, and the mean predicted probability."""
    skill = skill_index("pick_place")
    out: dict = {}
    for case in cases:
        o = Observation.from_clouds(case["clouds"], n_points, seed=0, max_objects=model.cfg.max_objects)
        with torch.no_grad():
            r = model.rollout(o, [SkillBatch(torch.tensor([skill]), torch.tensor([case["target_index"]]),
                                             torch.tensor([case["params"]], dtype=torch.float32))])[0]
        for g in GROUPS:
            # the contents group split by how many items the target holds (one failure shows one count)
            key = f"{g} ({len(case['literals'][g])} in target)" if g == "contents_inside_target" else g
            tally = out.setdefault(key, {"correct": 0, "literals": 0, "mean_p": []})
            for (a, b, rel), t in zip(case["literals"][g], case["truth"][g]):
                p = float(r.binary[0, a, b, rel])
                tally["correct"] += int((p >= 0.5) == t)
                tally["literals"] += 1
                tally["mean_p"].append(p)
    for tally in out.values():
        ps = tally.pop("mean_p")
        tally["accuracy"] = tally["correct"] / tally["literals"] if tally["literals"] else None
        tally["mean_p"] = float(np.mean(ps)) if ps else None
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------- planned trials
def mismatch_group(m: dict, target: int, table_b: int, contents: dict[int, list[int]]) -> str:
    """The group of a mispredicted goal literal (a FailureEvent ``mismatches`` entry) of a step
    acting on ``target``; ``contents``: the loaded containers' items before the step."""
    pred, subj, obj = m["predicate"], m["subject"], m["object"]
    if pred == "inside":
        return "contents_inside_target" if obj == target else "other_contents_inside"
    if pred == "above" and obj == table_b:
        return "target_above_table_b" if subj == target else "other_containers_stay"
    if pred in ("left", "right") and subj in contents and obj in contents:
        return "order"
    return "other"


_WORKER: dict = {}


def _anatomy_init(worker: bool = True) -> None:
    if worker:   # a pool process: one thread per worker (in-process runs keep the caller's)
        torch.set_num_threads(1)
    _WORKER["backend"] = MujocoBackend(load_world_config())
    _WORKER["models"] = {}


def anatomy_trial(ckpt: str, kind: str, n: int, i: int) -> dict:
    """One planned trial (task seed 95000 + 1000·n + i, trial seed i) and its first failure."""
    if "backend" not in _WORKER:
        _anatomy_init(worker=False)
    if ckpt not in _WORKER["models"]:
        model, ck = load_model(ckpt)
        _WORKER["models"][ckpt] = (model, ck.version)
    model, version = _WORKER["models"][ckpt]
    backend = _WORKER["backend"]
    task = make_task(kind, n, 95000 + 1000 * n + i, backend.cfg)
    backend.load(task.scene)
    names = [s.name for s in backend.segments]
    inside = backend.relations().binary[:, :, INSIDE]
    contents = {c: [int(k) for k in np.flatnonzero(inside[:, c])] for c, s in enumerate(backend.segments)
                if s.cls in CONTAINER_CLASSES and inside[:, c].any()}
    r = run_trial(model, version, task, backend, TrialConfig(), seed=i)
    moved = {t for s, t in r.plan.skeleton} if r.plan is not None else set()
    out = {"outcome": "success" if r.success else r.outcome, "plan_steps": len(r.plan.skeleton) if r.plan else 0,
           "leaves_container": bool(r.plan is not None and set(contents) - moved)}
    f = r.failure
    if f is not None:
        out["failure_step"] = f.step_index
        out["groups"] = sorted({mismatch_group(m, f.target, names.index("table_b"), contents) for m in f.mismatches})
    return out


def anatomy(results: list[dict]) -> dict:
    """The tally of planned trials' outcomes and first failures (see the module docstring)."""
    fails = [r for r in results if "failure_step" in r]
    return {"trials": len(results), "successes": sum(r["outcome"] == "success" for r in results),
            "outcomes": dict(collections.Counter(r["outcome"] for r in results)),
            "plans_leaving_a_container": sum(r["leaves_container"] for r in results),
            "failures": len(fails), "failures_at_first_step": sum(r["failure_step"] == 0 for r in fails),
            "mispredicted": {g: sum(g in r["groups"] for r in fails) for g in ANATOMY_GROUPS}}


def markdown(result: dict) -> str:
    """The readable summary of a probe result (the JSON main writes)."""
    lines = ["# Failure-mode probe: one placement of each loaded container onto table_b, fresh scenes",
             "", f"Command: `{result['command']}`; 'original' is the bench run's parent "
             f"`{result.get('parent_version', 'the shipped model')}`; {result['scenes']} scenes per cell (seeds {result['scene_seeds']}); "
             f"placement: {result['placement']}. Each entry: correct relation decisions of Γ / literals "
             "(the simulator's outcome is the truth). See the script's docstring for the groups.",
             "", f"Then {result['trials']} planned trials per cell and model (seeds {result['trial_seeds']}; the "
             "benchmark's trial settings), each tallied by its first detected failure.", ""]
    for kind, cells in result["tasks"].items():
        for n, cell in cells.items():
            base = cell["methods"]["original"]   # the run's parent is always there
            groups = [g for g, v in base.items() if isinstance(v, dict) and v.get("literals")]
            lines += [f"## {kind}, {n} objects ({cell['cases']} placements)", "",
                      "| model | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
            for m, r in cell["methods"].items():
                lines.append(f"| {m} | " + " | ".join(f"{r[g]['correct']}/{r[g]['literals']}" for g in groups) + " |")
            lines.append("")
            if any("table_b_edges" in r for r in cell["methods"].values()):
                lines += [f"table_b edges: above(target, table_b) over {cell['edge_grids']} placement grids "
                          f"({len(EDGE_GRID)} x {len(EDGE_GRID)}, ±{EDGE_GRID[-1]:g} m around table_b's centre, "
                          "out-of-reach points left out):", "",
                          "| model | correct | false 'above' / placements off the table | false 'not above' / on it |",
                          "|---|---|---|---|"]
                for m, r in cell["methods"].items():
                    e = r.get("table_b_edges")
                    if e:
                        lines.append(f"| {m} | {e['correct']}/{e['placements']} | {e['false_above']}/{e['off_table']} "
                                     f"| {e['false_not_above']}/{e['on_table']} |")
                lines.append("")
            planned = {m: r["planned"] for m, r in cell["methods"].items() if "planned" in r}
            if planned:
                lines += ["Planned trials, first detected failure (per group: failures whose mispredicted goal "
                          "literals include the group / failures):", "",
                          "| model | success | plan leaves a loaded container unmoved | failure at step 1 | "
                          + " | ".join(ANATOMY_GROUPS) + " |", "|---|---|---|---|" + "---|" * len(ANATOMY_GROUPS)]
                for m, t in planned.items():
                    f = t["failures"]
                    lines.append(f"| {m} | {t['successes']}/{t['trials']} | {t['plans_leaving_a_container']}/{t['trials']} "
                                 f"| {t['failures_at_first_step']}/{f} | "
                                 + " | ".join(f"{t['mispredicted'][g]}/{f}" for g in ANATOMY_GROUPS) + " |")
                lines.append("")
    return "\n".join(lines)


def plot_edges(result: dict, path: Path) -> None:
    """One row per task and object count, one panel per model: Γ's p(above(target, table_b))
    over one case's placement grid (the one reaching most of it), the placements that truly
    end above table_b outlined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    cells = [(kind, n, cell) for kind, cs in result["tasks"].items() for n, cell in cs.items()]
    models = list(dict.fromkeys(m for _, _, cell in cells for m in cell["methods"]))
    k = len(EDGE_GRID)
    fig, axes = plt.subplots(len(cells), len(models), figsize=(1.9 * len(models), 2.0 * len(cells)), squeeze=False)
    ext = [EDGE_GRID[0] - 0.06, EDGE_GRID[-1] + 0.06, EDGE_GRID[0] - 0.06, EDGE_GRID[-1] + 0.06]
    for r, (kind, n, cell) in enumerate(cells):
        for c, m in enumerate(models):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            example = cell["methods"].get(m, {}).get("table_b_edges", {}).get("example")
            if c == 0:
                ax.set_ylabel(f"{kind} {n}\nx offset", fontsize=7)
            if r == 0:
                ax.set_title(m, fontsize=7)
            if not example:
                ax.axis("off")
                continue
            p = np.array([np.nan if v is None else v for v in example["p"]]).reshape(k, k)
            im = ax.imshow(p, origin="lower", extent=ext, vmin=0, vmax=1, cmap="viridis")
            for i, t in enumerate(example["truth"]):
                if t:
                    u, v = divmod(i, k)
                    ax.add_patch(Rectangle((EDGE_GRID[v] - 0.06, EDGE_GRID[u] - 0.06), 0.12, 0.12,
                                           fill=False, edgecolor="white", linewidth=0.8))
            ax.add_patch(Rectangle((-0.25, -0.25), 0.5, 0.5, fill=False, edgecolor="red", linewidth=0.8, linestyle="--"))
    fig.suptitle("p(target above table_b) by placement offset from table_b's centre (columns: y, rows: x, m); "
                 "white: truly above; red dashed: the table top", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/f2p-bench", help="the --work folder of benchmarks/fail2progress.py")
    p.add_argument("--tasks", nargs="+", default=["transport", "organize"])
    p.add_argument("--object-counts", nargs="+", type=int, default=[3, 5, 7])
    p.add_argument("--scenes", type=int, default=8, help="fresh scenes per task and object count")
    p.add_argument("--trials", type=int, default=8,
                   help="planned trials per task, object count and model of ANATOMY_METHODS (0: none)")
    p.add_argument("--workers", type=int, default=2, help="processes for the planned trials")
    p.add_argument("--parent", help="the bench run's parent, scored as 'original' (default: the path its progress.json "
                                    "records; runs made before it recorded one need it)")
    p.add_argument("--out", default=str(RESULTS / "failure_mode_probe"))
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    work = Path(a.work)
    if not (work / "progress.json").is_file():
        p.error(f"{work} holds no bench-f2p run (no progress.json): run benchmarks/fail2progress.py --work {work} first")
    run = json.loads((work / "progress.json").read_text())
    parent = Path(a.parent or run.get("parent_path") or
                  p.error(f"{work}/progress.json records no parent path (an older bench-f2p run): pass --parent"))
    if not parent.is_file():
        p.error(f"parent {parent} not found")
    version = load_model(parent)[1].version
    if version != run["settings"]["parent"]:
        p.error(f"{parent} is version {version}, the run in {work} learned from {run['settings']['parent']}: "
                "pass that run's --parent")
    backend = MujocoBackend(load_world_config())
    camera = Camera.from_config(backend.cfg, TrialConfig().camera)
    result = {"command": "python benchmarks/failure_mode_probe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "parent": str(parent), "parent_version": run["settings"]["parent"], "machine": platform.platform(),
              "scenes": a.scenes, "scene_seeds": "90000 + 1000*n + i",
              "placement": f"target centre to table_b centre + U(-{JITTER}, {JITTER}) m per axis, dz {DZ}",
              "trials": a.trials, "trial_seeds": "task 95000 + 1000*n + i, trial i", "tasks": {}}
    pool = (ProcessPoolExecutor(a.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_anatomy_init)
            if a.trials and a.workers > 1 else None)
    for kind in a.tasks:
        for n in a.object_counts:
            ckpts = {"original": parent, "large_task": work / "random" / "large_task" / "model.pt"}
            ckpts.update({m: work / kind / f"n{n}" / m / "model.pt" for m in METHODS})
            ckpts = {m: c for m, c in ckpts.items() if c.is_file()}
            cases = probe_cases(kind, n, a.scenes, backend, camera)
            edges = edge_cases(kind, n, a.scenes, backend, camera)
            cell = {"cases": len(cases), "edge_grids": len(edges), "methods": {}}
            for m, c in ckpts.items():
                model, ck = load_model(c)
                pts = int(ck.training_data.get("points_per_object", 128))
                cell["methods"][m] = {"checkpoint": str(c), "version": ck.version, **score(model, cases, pts),
                                      "table_b_edges": score_edges(model, edges, pts)}
            for m in (m for m in ANATOMY_METHODS if m in ckpts and a.trials):
                jobs = [(str(ckpts[m]), kind, n, i) for i in range(a.trials)]
                runs = list(pool.map(anatomy_trial, *zip(*jobs))) if pool else [anatomy_trial(*j) for j in jobs]
                cell["methods"][m]["planned"] = anatomy(runs)
            result["tasks"].setdefault(kind, {})[str(n)] = cell
            print(f"[probe] {kind}/{n}: {len(cases)} cases, {len(ckpts)} models, "
                  f"{a.trials} planned trials each for {[m for m in ANATOMY_METHODS if m in ckpts]}", flush=True)
    if pool is not None:
        pool.shutdown()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    plot_edges(result, out.parent / f"{out.name}_edges.png")
    print(f"[probe] wrote {out}.json/.md and {out.name}_edges.png in {result['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
