"""Fail2Progress against the §6 baselines after learning from ONE failure (paper 000 Tables 1-3,
Table 2, Fig. 3b, Fig. 6, A.5, A.15) on our simulated tasks. ``make bench-f2p``.

Per task (transport, organize): the shipped pre-trained model attempts 3-object instances
(seeds 1000, 1001, ...) until the first detected failure; that ONE event is what every method
learns from. Methods:

  original       the pre-trained model, no learning
  replanning     the pre-trained model; after a detected failure it plans again from the
                 current observation (up to 2 times)
  small / large  + 20 / + 2,000 random transitions from the tasks' own distribution
  sampling, gradient, fail2progress, domain_randomization
                 + 20 transitions around the event (f2p_learning.targeted, same objective)

All learned methods fine-tune the same parent with the same f2p-learn settings (epochs, lr,
replay, seed); ``large`` runs ``--large-epochs`` (its data is 100x bigger). Evaluation scenes
are fresh seeds (30000 + 1000·n + i), never the failure's. Success = the plan executed
with every step as predicted and the goal held (f2p_failure.episode).

Writes benchmarks/results/fail2progress.{json,md,png}. ``--quick`` is a smoke setting and is
never the one reported.
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

import numpy as np
import torch

from f2p_common.vocabulary import BINARY_RELATIONS
from f2p_failure.episode import TrialConfig, run_trial
from f2p_failure.events import save_event
from f2p_learning import learn
from f2p_learning.targeted import random_dataset
from f2p_sim.config import load_world_config
from f2p_sim.dataset import SimDataset
from f2p_sim.datagen import main as datagen
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import NoiseModel
from f2p_sim.tasks import make_task
from f2p_skill_effect import train as f2p_train
from f2p_skill_effect.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]
LEARNED = ("small", "large", "sampling", "gradient", "fail2progress", "domain_randomization")
ALL_METHODS = ("original", "replanning", *LEARNED)


def load(path):
    model, ck = load_model(path)
    return ck, model


def success_rate(model, version, kind, n, trials, backend, tcfg):
    wins = 0
    for i in range(trials):
        seed = 30000 + 1000 * n + i
        wins += run_trial(model, version, make_task(kind, n, seed, backend.cfg), backend, tcfg, seed=i).success
    return {"successes": wins, "trials": trials, "success_rate": wins / trials}


def dataset_quality(d_plus: Path, event) -> dict:
    """A.15: how many D+ initial states satisfy the failure's relations R'_F literals as observed
    before the skill (R_F on the mismatched pairs), and the spread of the action parameters."""
    ds = SimDataset(d_plus)
    sat, acts = [], []
    for tr in ds.transitions(skip_flags=0):
        ok = []
        for m in event.mismatches:
            if m["object"] is None:
                continue
            k = BINARY_RELATIONS.index(m["predicate"])
            ok.append(bool(tr["rel_t_binary"][m["subject"], m["object"], k]) ==
                      bool(event.relations_before_binary[m["subject"], m["object"], k]))
        sat.append(all(ok) if ok else True)
        acts.append(tr["params"])
    acts = np.asarray(acts)
    return {"failure_relation_satisfaction": float(np.mean(sat)) if sat else None,
            "action_spread_std": [float(v) for v in acts.std(0)] if len(acts) else None, "transitions": len(sat)}


def fine_tune_random(parent_path, data_dir, out_path, epochs, replay, seed, n_points):
    rc = f2p_train.main(["--data", str(data_dir), "--out", str(out_path), "--init-checkpoint", str(parent_path),
                         "--epochs", str(epochs), "--lr", "1e-4", "--seed", str(seed), "--points", str(n_points),
                         "--patience", str(epochs), "--replay-data", replay, "--replay-fraction", "0.5", "--quiet"])
    if rc:
        raise RuntimeError(f"fine-tuning on {data_dir} failed ({rc})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100, help="evaluation trials per method x object count")
    p.add_argument("--tasks", nargs="+", default=["transport", "organize"])
    p.add_argument("--object-counts", nargs="+", type=int, default=[3, 5, 7])
    p.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--large-epochs", type=int, default=10)
    p.add_argument("--particles-ablation", nargs="*", type=int, default=[5, 10, 20, 40])
    p.add_argument("--noise-levels", nargs="*", type=float, default=[0.0, 0.005, 0.01, 0.02])
    p.add_argument("--viewpoints", nargs="*", default=["left_high", "right_low"])
    p.add_argument("--ablation-trials", type=int, default=None, help="trials for ablations (default: --trials)")
    p.add_argument("--work", default="/tmp/f2p-bench")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fail2progress"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny settings, never reported")
    a = p.parse_args(argv)
    if a.quick:
        a.trials, a.tasks, a.object_counts, a.epochs, a.large_epochs = 2, ["transport"], [3], 5, 1
        a.particles_ablation, a.noise_levels, a.viewpoints = [5], [0.0], a.viewpoints[:1]
        a.out = str(Path(a.work) / "quick" / "fail2progress")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log = lambda *x: print("[bench-f2p]", *x, flush=True)
    parent_path = ROOT / "models" / "skill_effect_pretrained.pt"
    ck0, m0 = load(parent_path)
    n_points = int(ck0.training_data.get("points_per_object", 128))
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    tcfg = TrialConfig(n_points=n_points)
    ab_trials = a.ablation_trials or a.trials
    data = {}
    for name, seed, n in (("replay", 2, 400), ("regression", 3, 300)):
        folder = work / "data" / name
        if not (folder / "manifest.json").is_file():
            datagen(["--out", str(folder), "--transitions", str(n), "--seed", str(seed), "--hold-out-failure-modes",
                     "--steps-per-scene", "8", "--workers", "2", "--no-progress"])
        data[name] = str(folder)
    result: dict = {"command": "python benchmarks/fail2progress.py " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
                    "quick": a.quick, "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                                  "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
                    "parent_version": ck0.version, "trials_per_cell": a.trials, "epochs": a.epochs,
                    "large_epochs": a.large_epochs, "seeds": {"evaluation": "30000 + 1000*n + i, i < trials",
                                                              "failure_search": "1000..1019", "learning": a.seed},
                    "tasks": {}}
    for kind in a.tasks:
        log(f"== {kind}: finding the failure to learn from")
        event = None
        for s in range(1000, 1020):
            r = run_trial(m0, ck0.version, make_task(kind, 3, s, cfg), backend, tcfg, seed=0)
            if r.failure is not None:
                event = r.failure
                break
        if event is None:
            log(f"{kind}: the pre-trained model did not fail on 20 instances; skipping")
            continue
        ev_path = save_event(event, work / kind / "events")
        tres: dict = {"event": {"id": event.event_id, "task_seed": event.context["task_seed"], "mismatches": event.mismatches},
                      "methods": {}}
        models = {"original": (ck0, m0), "replanning": (ck0, m0)}
        for method in [m for m in a.methods if m in LEARNED]:
            t0 = time.perf_counter()
            out = work / kind / method
            info: dict = {}
            if method in ("small", "large"):
                n_rand = 20 if method == "small" else 2000
                rdir = work / "data" / f"random_{n_rand}"
                if not (rdir / "manifest.json").is_file():
                    random_dataset(rdir, n_rand, seed=a.seed + 50, workers=2)
                out.mkdir(parents=True, exist_ok=True)
                fine_tune_random(parent_path, rdir, out / "model.pt", a.epochs if method == "small" else a.large_epochs,
                                 data["replay"], a.seed, n_points)
            else:
                rc = learn.main(["--event", str(ev_path), "--checkpoint", str(parent_path), "--out-dir", str(out),
                                 "--method", method, "--epochs", str(a.epochs), "--replay-data", data["replay"],
                                 "--regression-data", data["regression"], "--seed", str(a.seed), "--quiet"])
                if rc:
                    log(f"{kind}/{method}: f2p-learn exit {rc}")
                    tres["methods"][method] = {"error": f"f2p-learn exit {rc}"}
                    continue
                rep = json.loads((out / "learn_report.json").read_text())
                info["optimization_time_s"] = rep["stages"]["infer"]["optimisation_seconds"]
                info["deployable"] = rep["deployable"]
                info["dataset_quality"] = dataset_quality(out / "d_plus", event)
            info["learn_seconds"] = time.perf_counter() - t0
            models[method] = load(out / "model.pt")
            tres["methods"][method] = info
            log(f"{kind}/{method}: learned in {info['learn_seconds']:.0f}s")
        for method in a.methods:
            ck, m = models[method]
            cfg_m = TrialConfig(n_points=n_points, replans=2 if method == "replanning" else 0)
            cells = {}
            for n in a.object_counts:
                cells[str(n)] = success_rate(m, ck.version, kind, n, a.trials, backend, cfg_m)
                log(f"{kind}/{method}/{n} objects: {cells[str(n)]['successes']}/{a.trials}")
            tres["methods"].setdefault(method, {})["success"] = cells
        # Table 2 / A.14: fine-tuned on the 3-object failure, tested on 5/7 objects (above) and unseen viewpoints.
        if "fail2progress" in models:
            ck, m = models["fail2progress"]
            gen = {"objects": {n: tres["methods"]["fail2progress"]["success"].get(str(n)) for n in (5, 7)}, "viewpoints": {}}
            for cam in a.viewpoints:
                gen["viewpoints"][cam] = {meth: success_rate(models[meth][1], models[meth][0].version, kind, 3, ab_trials, backend,
                                                             TrialConfig(n_points=n_points, camera=cam))
                                          for meth in ("original", "fail2progress")}
                log(f"{kind} viewpoint {cam}: {gen['viewpoints'][cam]}")
            tres["generalization"] = gen
            # Fig. 3b: success vs point-cloud noise (isotropic Gaussian on every point).
            tres["noise_study"] = {}
            for sd in a.noise_levels:
                nz = NoiseModel(0.0, sd, 0.0) if sd > 0 else None
                tres["noise_study"][str(sd)] = {meth: success_rate(models[meth][1], models[meth][0].version, kind, 3, ab_trials,
                                                                   backend, TrialConfig(n_points=n_points, noise=nz))
                                                for meth in ("original", "fail2progress")}
                log(f"{kind} noise {sd}: {tres['noise_study'][str(sd)]}")
            # A.5: number of particles vs success and optimisation time.
            tres["particles_ablation"] = {}
            for mp in a.particles_ablation:
                out = work / kind / f"fail2progress_M{mp}"
                learn.main(["--event", str(ev_path), "--checkpoint", str(parent_path), "--out-dir", str(out),
                            "--particles", str(mp), "--epochs", str(a.epochs), "--replay-data", data["replay"],
                            "--regression-data", data["regression"], "--seed", str(a.seed), "--quiet"])
                rep = json.loads((out / "learn_report.json").read_text())
                ckm, mm = load(out / "model.pt")
                tres["particles_ablation"][str(mp)] = {
                    "optimization_time_s": rep["stages"]["infer"]["optimisation_seconds"],
                    **success_rate(mm, ckm.version, kind, 3, ab_trials, backend, tcfg)}
                log(f"{kind} M={mp}: {tres['particles_ablation'][str(mp)]}")
        result["tasks"][kind] = tres
    result["total_seconds"] = time.perf_counter() - t_start
    write_outputs(result, Path(a.out))
    log(f"wrote {a.out}.json/.md/.png in {result['total_seconds']:.0f}s")
    return 0


def write_outputs(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    lines = ["# Fail2Progress vs baselines after learning from one failure (simulated tasks, CPU)", "",
             f"Command: `{result['command']}`; {result['trials_per_cell']} trials per cell; parent model "
             f"`{result['parent_version']}`; fine-tuning {result['epochs']} epochs (large: {result['large_epochs']}); "
             f"machine {result['machine']['platform']}, {result['machine']['cpu_count']} cores."
             + (" **QUICK SMOKE RUN — not a result.**" if result["quick"] else ""), ""]
    for kind, tres in result["tasks"].items():
        counts = sorted({n for m in tres["methods"].values() for n in m.get("success", {})}, key=int)
        lines += [f"## {kind} (learned from event {tres['event']['id']}, task seed {tres['event']['task_seed']})", "",
                  "| method | " + " | ".join(f"{n} objects" for n in counts) + " | optimisation s | D+ failure-relation sat. | action std |",
                  "|---|" + "---|" * (len(counts) + 3)]
        for meth, info in tres["methods"].items():
            cells = [f"{info['success'][n]['successes']}/{info['success'][n]['trials']}" if n in info.get("success", {}) else "–"
                     for n in counts]
            dq = info.get("dataset_quality") or {}
            sat = dq.get("failure_relation_satisfaction")
            spread = dq.get("action_spread_std")
            lines.append(f"| {meth} | " + " | ".join(cells) + f" | {info.get('optimization_time_s', '–') if 'optimization_time_s' not in info else round(info['optimization_time_s'], 2)} | "
                         f"{'–' if sat is None else f'{sat:.2f}'} | {'–' if not spread else ', '.join(f'{v:.2f}' for v in spread)} |")
        for key, title in (("noise_study", "Point noise (m) vs success, 3 objects"),
                           ("particles_ablation", "Particles M vs success and optimisation time, 3 objects")):
            if key in tres:
                lines += ["", f"**{title}:** " + "; ".join(f"{k}: {json.dumps(v, default=float)}" for k, v in tres[key].items())]
        if "generalization" in tres:
            lines += ["", "**Unseen viewpoints, 3 objects:** " + "; ".join(
                f"{cam}: " + ", ".join(f"{m} {v['successes']}/{v['trials']}" for m, v in res.items())
                for cam, res in tres["generalization"]["viewpoints"].items())]
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        tasks = list(result["tasks"])
        fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(7 * max(1, len(tasks)), 4), squeeze=False)
        for ax, kind in zip(axes[0], tasks):
            meths = [m for m, i in result["tasks"][kind]["methods"].items() if "success" in i]
            counts = sorted({n for m in meths for n in result["tasks"][kind]["methods"][m]["success"]}, key=int)
            w = 0.8 / max(1, len(counts))
            for j, n in enumerate(counts):
                ax.bar(np.arange(len(meths)) + j * w, [result["tasks"][kind]["methods"][m]["success"][n]["success_rate"] for m in meths],
                       w, label=f"{n} objects")
            ax.set_xticks(np.arange(len(meths)) + w * (len(counts) - 1) / 2)
            ax.set_xticklabels(meths, rotation=30, ha="right", fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("success rate")
            ax.set_title(kind)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=100)
        plt.close(fig)
    except Exception as e:  # the JSON and markdown are the result; the plot is a convenience
        print(f"[bench-f2p] no plot: {e}")


if __name__ == "__main__":
    sys.exit(main())
