"""Does keeping the parent's placement geometry while fine-tuning help? A development study of
``f2p-learn --anchor-weight`` (``f2p_skill_effect.train.placement_anchor_loss``) beside
bench-f2p's paper recipe (run ``python benchmarks/fail2progress.py --recipe paper`` first: its
failure events, data and children are reused).

Every child learns from bench-f2p's ONE failure event of its cell, exactly as bench-f2p's
children do, once without and once with ``--anchor-weight`` (default 1):

``paper``  the shipped parent, M = 20 particles (bench-f2p --recipe paper): Fail2Progress, Sampling
           and Gradient on ``--cells``. The children without the anchor are bench-f2p's own.
``tr200``  the README's organize lead: a parent pre-trained with
           ``ModelConfig.target_relations`` (same data and settings as the shipped one;
           ``--tr-parent``, pre-trained here when missing, about 15 min), M = 200 particles,
           Fail2Progress, fine-tuned with each of ``--tr-recipes`` (``lr:epochs`` on
           ``--tr-cells``, or ``lr:epochs@task:n,task:n`` on the cells named; ``1e-4:200`` is the
           paper's and the row ``tr200``, others are rows ``tr200 lr L x E``: fewer epochs at a
           higher rate, to fit f2p-learn's 5-minute target). With ``--tr-table-edge-fraction F``
           the parent's data aims that fraction of its table placements over the tables' whole
           tops and past their edges (``f2p-datagen --table-edge-fraction``; use another
           ``--work`` and ``--out``).

``--anchored-only`` learns and scores only the children with the anchor (half the time);
``--keep-unseen-after`` fine-tunes every child on D+ transitions in which an object falls out of
view too (``f2p-learn --keep-unseen-after``; use another ``--work`` and ``--out``).

Each child is scored by planned trials on DEVELOPMENT seeds (task 70000 + 1000·n + i, trial
seed i; never bench-f2p's evaluation seeds 30000+, a failure search's 1000+, or the probe's
90000+ / 95000+), so nothing here is tuned on the reported scenes, and by
``failure_mode_probe``'s one-step scores on its fresh scenes: ``false_above`` (table_b_edges
placements off the table that Γ calls "above table_b", out of ``off_table``) and the lesson
(contents ride along with the picked container, right / literals).

Usage (on 2 cores: a child takes 1-2 min to learn in the ``paper`` rows, 12-18 min in ``tr200``,
2-5 min in ``tr200 lr 0.0005 x 40``, and its scores 2-5 min; each finished child and score is
saved in ``<work>/progress.json`` so a rerun resumes)::

    python benchmarks/anchor_study.py --bench-work /tmp/f2p-bench-paper --work /tmp/f2p-anchor

Writes benchmarks/results/anchor_study.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from f2p_failure.episode import TrialConfig
from f2p_learning import learn
from f2p_sim.config import load_world_config
from f2p_sim.datagen import main as datagen
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera
from f2p_skill_effect import train as f2p_train
from f2p_skill_effect.checkpoint import load_model

from fail2progress import Evaluator, Progress
import failure_mode_probe as probe

ROOT = Path(__file__).resolve().parents[1]
#: Development task seeds: base + 1000·n + i.
DEV_SEED_BASE = 70000
PAPER_METHODS = ("fail2progress", "sampling", "gradient")
#: f2p-learn's fine-tuning (paper 000 §5): 200 epochs, Adam lr 1e-4.
PAPER_LR, PAPER_EPOCHS = 1e-4, 200


def tr_row(lr: float, epochs: int) -> str:
    """Row name of a target_relations recipe; the paper's keeps the name of runs made before recipes."""
    return "tr200" if (lr, epochs) == (PAPER_LR, PAPER_EPOCHS) else f"tr200 lr {lr:g} x {epochs}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench-work", default="/tmp/f2p-bench-paper",
                   help="the --work folder of benchmarks/fail2progress.py --recipe paper")
    p.add_argument("--work", default="/tmp/f2p-anchor")
    p.add_argument("--cells", nargs="*", default=["transport:3", "transport:5", "transport:7", "organize:3"],
                   help="task:objects cells of the paper-setting rows")
    p.add_argument("--tr-cells", nargs="*", default=["organize:5", "organize:7"],
                   help="task:objects cells of the target_relations / M = 200 rows")
    p.add_argument("--tr-parent", default=None,
                   help="a target_relations pre-trained checkpoint (default: <work>/tr_parent.pt, pre-trained if missing)")
    p.add_argument("--tr-recipes", nargs="*",
                   default=["1e-4:200", "5e-4:40@organize:5,organize:7,organize:3,transport:3,transport:5,transport:7"],
                   help="lr:epochs[@task:n,...] of the fine-tuning of the target_relations rows (paper: 1e-4:200; "
                        "without @, on --tr-cells)")
    p.add_argument("--tr-table-edge-fraction", type=float, default=0.0, metavar="F",
                   help="pre-train the target_relations parent on data with f2p-datagen --table-edge-fraction F "
                        "(default 0: the shipped parent's data)")
    p.add_argument("--anchored-only", action="store_true",
                   help="learn and score only the children with the anchor")
    p.add_argument("--keep-unseen-after", action="store_true",
                   help="children fine-tune on D+ transitions in which an object falls out of view too "
                        "(f2p-learn --keep-unseen-after)")
    p.add_argument("--anchor-weight", type=float, default=1.0)
    p.add_argument("--trials", type=int, default=30, help="development trials per child")
    p.add_argument("--scenes", type=int, default=8, help="probe scenes per cell")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "anchor_study"))
    a = p.parse_args(argv)
    try:
        recipes = []
        for r in a.tr_recipes:
            head, _, cells = r.partition("@")
            lr, ep = head.split(":")
            recipes.append((float(lr), int(ep), cells.split(",") if cells else list(a.tr_cells)))
    except ValueError:
        p.error(f"a recipe is lr:epochs[@task:n,...], e.g. 5e-4:40@organize:5 (got {a.tr_recipes})")
    a.tr_recipes = recipes
    for c in (*a.cells, *a.tr_cells, *(c for *_, cells in recipes for c in cells)):
        kind, _, n = c.partition(":")
        if kind not in ("transport", "organize", "packing") or not n.isdigit():
            p.error(f"a cell is task:objects, e.g. organize:5 (got {c!r})")
    if not all(lr > 0 and ep > 0 for lr, ep, _ in a.tr_recipes):
        p.error("a recipe's lr and epochs must be > 0")
    if not 0.0 <= a.tr_table_edge_fraction <= 1.0:
        p.error("--tr-table-edge-fraction must be in [0, 1]")
    if not a.anchor_weight > 0:
        p.error("--anchor-weight must be > 0 (the study compares with and without it)")
    return a


def pretrain_target_relations(work: Path, seed: int, table_edge_fraction: float = 0.0) -> Path:
    """The shipped parent's recipe (models/README.md) with ModelConfig.target_relations (and,
    when ``table_edge_fraction`` > 0, f2p-datagen --table-edge-fraction)."""
    data, out = work / "tr_data", work / "tr_parent.pt"
    if not (data / "manifest.json").is_file():
        datagen(["--out", str(data), "--transitions", "12000", "--workers", "2", "--seed", "0",
                 "--hold-out-failure-modes", "--steps-per-scene", "8", "--no-progress",
                 *(["--table-edge-fraction", str(table_edge_fraction)] if table_edge_fraction else [])])
    rc = f2p_train.main(["--data", str(data), "--out", str(out), "--epochs", "10", "--lr", "5e-4", "--seed", str(seed),
                         "--config-json", json.dumps({"target_relations": True})])
    if rc:
        raise SystemExit(f"anchor_study: pre-training the target_relations parent failed (exit {rc})")
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    log = lambda *x: print("[anchor-study]", *x, flush=True)
    bench, work = Path(a.bench_work), Path(a.work)
    if not (bench / "progress.json").is_file():
        raise SystemExit(f"anchor_study: {bench} holds no bench-f2p run: run benchmarks/fail2progress.py --recipe paper "
                         f"--work {bench} first")
    shipped = ROOT / "models" / "skill_effect_pretrained.pt"
    bench_parent = json.loads((bench / "progress.json").read_text())["settings"]["parent"]
    if bench_parent != load_model(shipped)[1].version:
        raise SystemExit(f"anchor_study: {bench} is a bench-f2p run from parent {bench_parent}, not the shipped model's: "
                         "pass the --work of benchmarks/fail2progress.py --recipe paper")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tr_parent = Path(a.tr_parent) if a.tr_parent else work / "tr_parent.pt"
    tr_used = any(cells for *_, cells in a.tr_recipes)
    if tr_used and not tr_parent.is_file():
        log(f"pre-training the target_relations parent into {tr_parent}")
        tr_parent = pretrain_target_relations(work, a.seed, a.tr_table_edge_fraction)
    settings = {"anchor_weight": a.anchor_weight, "trials": a.trials, "scenes": a.scenes, "seed": a.seed,
                "tr_parent": load_model(tr_parent)[1].version if tr_used else None}
    if a.tr_table_edge_fraction:   # only when used: the progress of runs made before it stays valid
        settings["tr_table_edge_fraction"] = a.tr_table_edge_fraction
    if a.keep_unseen_after:
        settings["keep_unseen_after"] = True
    progress = Progress(work / "progress.json", settings, fresh=False)
    evaluator = Evaluator(a.workers)
    backend = MujocoBackend(load_world_config())
    camera = Camera.from_config(backend.cfg, TrialConfig().camera)
    data = {k: str(bench / "data" / k) for k in ("replay", "regression")}

    def child(row: str, parent: Path, particles: int, kind: str, n: int, method: str, anchored: bool,
              lr: float, epochs: int) -> Path:
        if row == "paper" and not anchored and not a.keep_unseen_after:
            return bench / kind / f"n{n}" / method / "model.pt"       # bench-f2p's own child
        out = work / row.replace(" ", "_") / ("anchor" if anchored else "plain") / kind / f"n{n}" / method
        if not (out / "model.pt").is_file():
            events = sorted((bench / kind / f"n{n}" / "events").glob("*.f2pevent"))
            if not events:
                raise SystemExit(f"anchor_study: bench-f2p found no failure event for {kind} {n}")
            log(f"learning {row} {kind} {n} {method} anchor={anchored}")
            rc = learn.main(["--event", str(events[0]), "--checkpoint", str(parent), "--out-dir", str(out),
                             "--method", method, "--particles", str(particles), "--epochs", str(epochs), "--lr", str(lr),
                             "--replay-data", data["replay"], "--regression-data", data["regression"],
                             "--seed", str(a.seed), "--quiet",
                             *(["--anchor-weight", str(a.anchor_weight)] if anchored else []),
                             *(["--keep-unseen-after"] if a.keep_unseen_after else [])])
            if rc:
                raise SystemExit(f"anchor_study: f2p-learn failed (exit {rc}) for {out}")
        return out / "model.pt"

    rows = [("paper", shipped, 20, c, m, PAPER_LR, PAPER_EPOCHS) for c in a.cells for m in PAPER_METHODS] + \
        [(tr_row(lr, ep), tr_parent, 200, c, "fail2progress", lr, ep) for lr, ep, cells in a.tr_recipes for c in cells]
    results = []
    cases: dict = {}
    for row, parent, particles, cell, method, lr, epochs in rows:
        kind, n = cell.split(":")[0], int(cell.split(":")[1])
        entry = {"row": row, "task": kind, "objects": n, "method": method, "particles": particles, "lr": lr, "epochs": epochs}
        for anchored in ((True,) if a.anchored_only else (False, True)):
            ck = child(row, parent, particles, kind, n, method, anchored, lr, epochs)

            def measure(ck=ck, kind=kind, n=n):
                if (kind, n) not in cases:
                    cases[(kind, n)] = (probe.probe_cases(kind, n, a.scenes, backend, camera),
                                        probe.edge_cases(kind, n, a.scenes, backend, camera))
                model, meta = load_model(ck)
                pts = int(meta.training_data.get("points_per_object", 128))
                lesson = {k: v for k, v in probe.score(model, cases[(kind, n)][0], pts).items()
                          if k.startswith("contents_inside_target")}
                edges = probe.score_edges(model, cases[(kind, n)][1], pts)
                rate = evaluator.rate(ck, kind, n, a.trials, TrialConfig(n_points=pts), seed_base=DEV_SEED_BASE)
                report = ck.parent / "learn_report.json"
                learn_s = json.loads(report.read_text()).get("total_seconds") if report.is_file() else None
                return {"checkpoint": str(ck), "version": meta.version, "learn_seconds": learn_s,
                        "deployable": meta.metrics.get("deployable"), "successes": rate["successes"],
                        "trials": rate["trials"], "outcomes": rate["outcomes"],
                        "false_above": edges["false_above"], "off_table": edges["off_table"],
                        "false_not_above": edges["false_not_above"], "on_table": edges["on_table"],
                        "lesson": {k: [v["correct"], v["literals"]] for k, v in lesson.items()}}
            entry["anchor" if anchored else "plain"] = progress.get(f"{row}/{cell}/{method}/{anchored}", measure)
            e = entry["anchor" if anchored else "plain"]
            log(f"{row} {cell} {method} anchor={anchored}: {e['successes']}/{e['trials']}, "
                f"false above {e['false_above']}/{e['off_table']}")
        results.append(entry)
    evaluator.close()
    result = {"command": "python benchmarks/anchor_study.py " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
              "settings": settings, "seeds": {"trials": f"task {DEV_SEED_BASE} + 1000*n + i, trial i, i < {a.trials}",
                                             "probe": "task 90000 + 1000*n + i, i < scenes", "learning": a.seed},
              "results": results, "total_seconds": round(time.perf_counter() - t0, 1)}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    log(f"wrote {out.with_suffix('.json')} and .md ({result['total_seconds']:.0f} s)")
    return 0


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = ["# Placement anchor study (development seeds)", "",
             f"`{result['command']}` — {result['machine']['platform']}, {result['machine']['cpu_count']} CPUs.", "",
             f"Each child learns from bench-f2p's failure event of its cell without and with `--anchor-weight "
             f"{s['anchor_weight']}`; successes of {s['trials']} planned trials on development seeds "
             f"({result['seeds']['trials']}), never bench-f2p's evaluation scenes. `false above`: table_b_edges "
             "placements off the table that the child calls above table_b (failure_mode_probe's fresh scenes). "
             "`lesson`: contents predicted to ride along with the picked container (right / literals). "
             "Rows `paper`: shipped parent, M = 20 (bench-f2p's setting; its children are the ones without the "
             "anchor). Rows `tr200`: a parent pre-trained with `ModelConfig.target_relations`, M = 200, fine-tuned "
             "200 epochs at lr 1e-4 like every other row; rows `tr200 lr L x E`: the same at lr L for E epochs."
             + (f" The target_relations parent here is pre-trained on data whose table placements aim, "
                f"{s['tr_table_edge_fraction']:.0%} of them, over the tables' whole tops and up to 10 cm past their "
                "edges (f2p-datagen --table-edge-fraction)." if s.get("tr_table_edge_fraction") else "")
             + (" Every child here also fine-tunes on the D+ transitions in which an object falls out of view "
                "(f2p-learn --keep-unseen-after)." if s.get("keep_unseen_after") else "")
             + (" `-`: not run (--anchored-only)." if any("plain" not in r for r in result["results"]) else ""), "",
             "| row | cell | method | success | success + anchor | false above | false above + anchor | lesson | lesson + anchor "
             "| f2p-learn s (+ anchor) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    # "contents_inside_target (2 in target)" -> "2-item 12/16"
    fmt_lesson = lambda d: ", ".join(f"{k.split('(')[1].split()[0]}-item {c}/{t}"
                                     for k, (c, t) in sorted(d["lesson"].items())) or "-"
    fmt_s = lambda d: "-" if d.get("learn_seconds") is None else f"{d['learn_seconds']:.0f}"
    none = {"successes": "-", "trials": "", "false_above": "-", "off_table": "", "lesson": {}}
    frac = lambda d, k, n: f"{d[k]}/{d[n]}" if d[n] != "" else "-"
    for r in result["results"]:
        p, q = r.get("plain", none), r["anchor"]
        lines.append(f"| {r['row']} | {r['task']} {r['objects']} | {r['method']} | {frac(p, 'successes', 'trials')} | "
                     f"{q['successes']}/{q['trials']} | {frac(p, 'false_above', 'off_table')} | "
                     f"{q['false_above']}/{q['off_table']} | {fmt_lesson(p)} | {fmt_lesson(q)} | "
                     f"{fmt_s(p)} / {fmt_s(q)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
