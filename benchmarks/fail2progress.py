"""Fail2Progress against the §6 baselines after learning from ONE failure (paper 000 Tables 1-3,
Table 2, Fig. 3b, Fig. 6, A.5, A.15) on our simulated tasks. ``make bench-f2p``.

Table 1: per task (transport, organize; packing is left out for its planning time, see the
report) and object count n, the pre-trained parent model attempts n-object instances (seeds
1000, 1001, ...) until the first detected failure; that ONE event is what every method learns
from, and the result is evaluated on fresh n-object instances. Methods:

  original       the pre-trained model, no learning
  replanning     the pre-trained model; after a detected failure it plans again from the
                 current observation (up to 2 times)
  small / large  + M (``--particles``) / + 2,000 random transitions from the pre-training distribution (paper
                 §6: "pre-training dataset with a small set (40000+20 data points)" /
                 "(40000+2000 data points)"; DatagenParams.hold_out_failure_modes)
  large_task     + 2,000 random transitions from the tasks' own distribution, where the failure
                 modes occur at their natural rate (a data-hungry reference beside the §6
                 baselines: every transport scene holds a loaded bin, so this data shows the
                 held-out effect hundreds of times)
                 The random baselines do not depend on the event: learned once, evaluated everywhere.
  sampling, gradient, fail2progress, domain_randomization
                 + M transitions around the event (f2p_learning.pairs, same objective)

All learned methods fine-tune the same parent with the same learning recipe (``RECIPES``:
parent, M, epochs, lr, placement anchor, transitions with an object out of view; replay, object
relabelling and seed as f2p-learn does); ``large`` and ``large_task`` run ``--large-epochs``
(their data is 100x bigger). ``--recipe five-minute`` (the default) is the recipe of
benchmarks/studies/README.md that keeps the whole learn-from-failure step inside 5 minutes on this CPU:
the ``target_relations`` parent, M = 200, 40 epochs at lr 5e-4, anchor weight 1, out-of-view
transitions kept. ``--recipe paper`` is paper 000's: the shipped pre-trained parent, M = 20,
200 epochs at lr 1e-4, no anchor, out-of-view transitions skipped. Each recipe has its own
``--work`` and ``--out``; any of its settings can be overridden (``--parent``, ``--particles``,
``--epochs``, ``--lr``, ``--anchor-weight``, ``--[no-]keep-unseen-after``).
Evaluation scenes are fresh seeds (30000 + 1000·n + i), never the failure's. Success = the plan
executed with every step as predicted and the goal held (f2p_sim.episode).

Table 2 (generalisation): the models of Original, Sampling, Gradient and Fail2Progress learned
from the 3-object failure, tested on 5 and 7 objects and from two unseen camera viewpoints.
Fig. 3b (point noise) and A.5 (particles M) use the 3-object failure. These studies run for
``--ablation-tasks`` (default: transport, the task of the paper's Table 2).

Writes benchmarks/results/fail2progress.{json,md,png} (``--recipe paper``: fail2progress_paper.*).
``--quick`` is a smoke setting and is never the one reported.

Long runs restart where they stopped: every finished cell (a fine-tune, a success rate) is
written to ``<work>/progress.json`` and reused when the same command runs again with the same
settings (a ``<work>`` holding another recipe's run is refused, never overwritten; ``--fresh``
discards it). Trials run in ``--workers`` processes, one torch thread each.
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

from f2p_common.dataset import SimDataset
from f2p_common.vocabulary import BINARY_RELATIONS
from f2p_failure.events import load_event, save_event
from f2p_learning.learn import LearnConfig, LearnInputError, learn
from f2p_sim.config import load_world_config
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_sim.episode import TrialConfig, run_trial
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import NoiseModel
from f2p_sim.tasks import make_task
from f2p_skill_effect.checkpoint import load_model, shipped_model
from f2p_training.train import FineTuneRecipe, train

RESULTS = Path(__file__).resolve().parent / "results"
#: Random-data baselines: (transitions, drawn from the pre-training distribution?).
RANDOM = {"small": (20, True), "large": (2000, True), "large_task": (2000, False)}
LEARNED = (*RANDOM, "sampling", "gradient", "fail2progress", "domain_randomization")
ALL_METHODS = ("original", "replanning", *LEARNED)
#: Compared on unseen object counts and viewpoints (paper 000 Table 2 / A.14: Fail2Progress, Gradient, Sampling).
GENERALIZATION_METHODS = ("original", "sampling", "gradient", "fail2progress")
#: Run for reference only, not one of paper 000 §6 / A.16's baselines: the comparison is complete without them.
REFERENCES = ("large_task",)
#: Learning recipes: the parent that fails and that every method fine-tunes, and how each fine-tunes
#: (benchmarks/studies/README.md measures each departure from the paper's); ``--recipe`` picks one, its
#: options override single settings. Each writes its own work folder and results.
RECIPES = {
    "five-minute": {"parent": "skill_effect_target_relations.pt", "particles": 200,
                    "epochs": 40, "lr": 5e-4, "anchor_weight": 1.0, "keep_unseen_after": True,
                    "particles_ablation": [5, 10, 20, 40, 200], "work": "/tmp/f2p-bench",
                    "out": str(RESULTS / "fail2progress")},
    "paper": {"parent": "skill_effect_pretrained.pt", "particles": 20,
              "epochs": 200, "lr": 1e-4, "anchor_weight": 0.0, "keep_unseen_after": False,
              "particles_ablation": [5, 10, 20, 40], "work": "/tmp/f2p-bench-paper",
              "out": str(RESULTS / "fail2progress_paper")},
}
DEFAULT_RECIPE = "five-minute"


_WORKER: dict = {}


#: Task seeds of the evaluation trials start here (+ 1000·n + i).
EVALUATION_SEED_BASE = 30000


def evaluation_task_seed(n: int, i: int, base: int = EVALUATION_SEED_BASE) -> int:
    """Task seed of evaluation trial i at n objects (never a failure search's 1000..1019);
    ``base``: another seed range (development studies keep off the reported one)."""
    return base + 1000 * n + i


def _worker_init() -> None:
    torch.set_num_threads(1)
    _WORKER["backend"] = MujocoBackend(load_world_config())
    _WORKER["models"] = {}


def _trial(ckpt: str, kind: str, n: int, i: int, tcfg: TrialConfig, seed_base: int = EVALUATION_SEED_BASE) -> str:
    """One evaluation trial (task seed seed_base + 1000·n + i, trial seed i); returns its outcome."""
    if ckpt not in _WORKER["models"]:
        model, ck = load_model(ckpt)
        _WORKER["models"][ckpt] = (model, ck.version)
    model, version = _WORKER["models"][ckpt]
    backend = _WORKER["backend"]
    r = run_trial(model, version, make_task(kind, n, evaluation_task_seed(n, i, seed_base), backend.cfg), backend, tcfg, seed=i)
    return "success" if r.success else r.outcome


class Evaluator:
    """Success rates over fixed evaluation seeds, trials spread over worker processes (spawned, so
    MuJoCo and torch start clean in each)."""

    def __init__(self, workers: int):
        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init)
        else:
            _worker_init()
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    def rate(self, ckpt: Path, kind: str, n: int, trials: int, tcfg: TrialConfig,
             seed_base: int = EVALUATION_SEED_BASE) -> dict:
        jobs = [(str(ckpt), kind, n, i, tcfg, seed_base) for i in range(trials)]
        if self.pool is None:
            outcomes = [_trial(*job) for job in jobs]
        else:
            outcomes = list(self.pool.map(_trial, *zip(*jobs)))
        wins = outcomes.count("success")
        return {"successes": wins, "trials": trials, "success_rate": wins / trials,
                "outcomes": dict(collections.Counter(outcomes))}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class OtherRunError(RuntimeError):
    """``<work>/progress.json`` holds the cells of a run with other settings."""


class Progress:
    """Finished cells of a run, persisted after each one so an interrupted run resumes. A file
    holding another run's cells (other settings: another recipe, parent, trial count) is refused,
    never overwritten, unless ``fresh``. ``meta`` (e.g. the parent's path, which the probes after
    the benchmark read) is saved beside the cells and not compared."""

    def __init__(self, path: Path, settings: dict, fresh: bool, report_only: bool = False, meta: dict | None = None):
        self.path, self.settings, self.cells, self.report_only = path, settings, {}, report_only
        self.meta = dict(meta or {})
        if path.is_file() and not fresh:
            saved = json.loads(path.read_text())
            if saved.get("settings") != settings:
                old = saved.get("settings") or {}
                diff = ", ".join(f"{k}: {old.get(k)!r} there, {settings.get(k)!r} here"
                                 for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k))
                raise OtherRunError(f"{path} holds {len(saved.get('cells', {}))} cells of a run with other settings "
                                    f"({diff}): use another --work, or --fresh to discard them")
            self.cells = saved["cells"]
            print(f"[bench-f2p] resuming: {len(self.cells)} finished cells from {path}", flush=True)

    def get(self, key: str, compute):
        if key not in self.cells and self.report_only:
            return {"error": "not run"}
        if key not in self.cells:
            self.cells[key] = compute()
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"settings": self.settings, **self.meta, "cells": self.cells}, default=float))
            tmp.replace(self.path)   # atomic: a kill mid-write leaves the previous file
        return self.cells[key]


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


def fine_tune_recipe(a, epochs: int | None = None) -> FineTuneRecipe:
    """How every learned method fine-tunes (the learner's recipe, with this run's settings)."""
    return FineTuneRecipe(epochs=a.epochs if epochs is None else epochs, lr=a.lr, anchor_weight=a.anchor_weight,
                          keep_unseen_after=bool(a.keep_unseen_after))


def random_dataset(folder, transitions: int, seed: int, workers: int = 1, hold_out_failure_modes: bool = True,
                   tasks=None, object_counts=None):
    """Random transitions for the Small / Large baselines (paper 000 §6: "the pre-training dataset
    with a small set (40000+20 data points)" / "(40000+2000 data points)"; A.16: randomised
    objects, poses and environments). By default from the pre-training distribution
    (``hold_out_failure_modes``, 8 steps per scene, as the shipped model was trained); without,
    from the tasks' own distribution, where the failure modes occur at their natural rate."""
    d = DatagenParams()
    params = DatagenParams(transitions=transitions, shard_size=min(100, transitions), seed=seed,
                           hold_out_failure_modes=hold_out_failure_modes,
                           steps_per_scene=8 if hold_out_failure_modes else d.steps_per_scene,
                           tasks=tuple(tasks or d.tasks), object_counts=tuple(object_counts or d.object_counts))
    return generate(DatagenConfig(folder, params, workers=workers, progress=False))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", choices=list(RECIPES), default=DEFAULT_RECIPE,
                   help="the learning recipe and its defaults below (RECIPES; default: %(default)s)")
    p.add_argument("--trials", type=int, default=100, help="evaluation trials per method x object count")
    p.add_argument("--tasks", nargs="+", default=["transport", "organize"])
    p.add_argument("--object-counts", nargs="+", type=int, default=[3, 5, 7])
    p.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    p.add_argument("--parent", help="the pre-trained model that fails and that every method fine-tunes: a shipped "
                                    "model's name or a checkpoint path (five-minute: skill_effect_target_relations.pt; "
                                    "paper: skill_effect_pretrained.pt)")
    p.add_argument("--particles", type=int,
                   help="M: transitions each targeted method generates, and small's random ones (five-minute: 200; "
                        "paper: 20)")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs of every method but large (five-minute: 40; paper: 200)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate of every method (five-minute: 5e-4; paper: 1e-4)")
    p.add_argument("--anchor-weight", type=float,
                   help="f2p-learn --anchor-weight for every fine-tuned method (five-minute: 1; paper: 0, off)")
    p.add_argument("--keep-unseen-after", action=argparse.BooleanOptionalAction,
                   help="every fine-tuned method also trains on the transitions in which an object falls out of "
                        "view (f2p-learn --keep-unseen-after; five-minute: kept; paper: skipped)")
    p.add_argument("--large-epochs", type=int, default=10)
    p.add_argument("--particles-ablation", nargs="*", type=int,
                   help="A.5: particle counts of the study (five-minute: 5 10 20 40 200; paper: 5 10 20 40)")
    p.add_argument("--noise-levels", nargs="*", type=float, default=[0.0, 0.005, 0.01, 0.02])
    p.add_argument("--viewpoints", nargs="*", default=["left_high", "right_low"])
    p.add_argument("--ablation-trials", type=int, default=None, help="trials for ablations (default: --trials)")
    p.add_argument("--ablation-tasks", nargs="*", default=["transport"],
                   help="tasks whose 3-object models get the generalisation, noise and particle studies "
                        "(paper 000 Table 2 / A.14 is on transport)")
    p.add_argument("--work", help="events, models and progress.json (five-minute: /tmp/f2p-bench; paper: /tmp/f2p-bench-paper)")
    p.add_argument("--out", help="results path without suffix (five-minute: benchmarks/results/fail2progress; "
                                 "paper: benchmarks/results/fail2progress_paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes running evaluation trials")
    p.add_argument("--fresh", action="store_true", help="discard <work>/progress.json from an earlier run")
    p.add_argument("--report-only", action="store_true",
                   help="write the results from the finished cells in <work>/progress.json, computing nothing "
                        "(cells not finished read 'not run')")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny settings, never reported")
    recipe, _ = p.parse_known_args(argv)
    p.set_defaults(**RECIPES[recipe.recipe])
    a = p.parse_args(argv)
    if a.particles < 1 or not 0 < a.lr < float("inf") or not 0 <= a.anchor_weight < float("inf"):
        p.error("--particles must be >= 1, --lr > 0 and --anchor-weight >= 0 (finite)")
    if a.quick:
        a.trials, a.tasks, a.object_counts, a.epochs, a.large_epochs = 2, ["transport"], [3], 5, 1
        a.particles_ablation, a.noise_levels, a.viewpoints = [5], [0.0], a.viewpoints[:1]
        a.particles = min(a.particles, 20)
        a.out = str(Path(a.work) / "quick" / "fail2progress")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log = lambda *x: print("[bench-f2p]", *x, flush=True)
    parent_path = Path(a.parent).resolve() if Path(a.parent).is_file() else shipped_model(a.parent)
    m0, ck0 = load_model(parent_path)
    n_points = int(ck0.training_data.get("points_per_object", 128))
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    tcfg = TrialConfig(n_points=n_points)
    ab_trials = a.ablation_trials or a.trials
    settings = {"parent": ck0.version, "trials": a.trials, "ablation_trials": ab_trials, "epochs": a.epochs,
                "large_epochs": a.large_epochs, "seed": a.seed, "quick": a.quick}
    recipe = {"particles": a.particles, "lr": a.lr, "anchor_weight": a.anchor_weight}
    if recipe != {"particles": 20, "lr": 1e-4, "anchor_weight": 0.0}:
        settings.update(recipe)   # the paper's recipe keeps the keys of runs made before these options
    if a.keep_unseen_after:
        settings["keep_unseen_after"] = recipe["keep_unseen_after"] = True
    random_size = {**RANDOM, "small": (a.particles, True)}
    run_dir = work / "quick" if a.quick else work     # events, models, progress; the generated data is shared
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        progress = Progress(run_dir / "progress.json", settings, a.fresh, a.report_only, {"parent_path": str(parent_path)})
    except OtherRunError as e:
        print(f"[bench-f2p] error: {e}", file=sys.stderr)
        return 2
    evaluator = Evaluator(a.workers)
    data = {}
    for name, seed, n in (("replay", 2, 400), ("regression", 3, 300)):
        folder = work / "data" / name
        if not (folder / "manifest.json").is_file():
            generate(DatagenConfig(folder, DatagenParams(transitions=n, seed=seed, hold_out_failure_modes=True,
                                                         steps_per_scene=8), workers=2, progress=False))
        data[name] = str(folder)
    result: dict = {"command": "python benchmarks/fail2progress.py " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
                    "recipe": a.recipe, "quick": a.quick, "report_only": a.report_only, "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                                                  "trial_workers": a.workers},
                    "parent_version": ck0.version, "trials_per_cell": a.trials, "ablation_trials": ab_trials,
                    "epochs": a.epochs, "large_epochs": a.large_epochs, **recipe,
                    "seeds": {"evaluation": "task 30000 + 1000*n + i, trial i, i < trials",
                              "failure_search": "task 1000..1019, trial 0", "learning": a.seed},
                    "tasks": {}}

    def learn_cell(method: str, out: Path, event=None, ev_path: Path | None = None, particles: int | None = None) -> dict:
        t0 = time.perf_counter()
        info: dict = {}
        if method in RANDOM:
            n_rand, pretrain_dist = random_size[method]
            rdir = work / "data" / (f"pretrain_random_{n_rand}" if pretrain_dist else f"random_{n_rand}")
            if not (rdir / "manifest.json").is_file():
                random_dataset(rdir, n_rand, seed=a.seed + 50, workers=2, hold_out_failure_modes=pretrain_dist)
            # the learner's fine-tuning on random data (no D+: unstable transitions stay skipped)
            recipe = fine_tune_recipe(a, a.epochs if method == "small" else a.large_epochs)
            train(recipe.train_config([rdir], out / "model.pt", parent_path, points=n_points, seed=a.seed,
                                      replay_data=[data["replay"]], keep_unstable=False))
        else:
            try:
                rep = learn(LearnConfig(event=ev_path, checkpoint=parent_path, out_dir=out, method=method,
                                        particles=particles or a.particles, fine_tune=fine_tune_recipe(a),
                                        replay_data=[data["replay"]], regression_data=[data["regression"]],
                                        seed=a.seed, fresh=True))     # progress.json decides what reruns
            except LearnInputError as e:
                return {"error": f"learning refused its input: {e}"}
            except Exception as e:   # one method's crash is that cell's result, not the end of the benchmark
                return {"error": f"learning raised {type(e).__name__}: {e}"}
            if rep.outcome != "learned":
                return {"error": f"learning stopped: {rep.result}"}
            info["optimization_time_s"] = rep.stages["infer"]["optimisation_seconds"]
            info["deployable"] = rep.deployable
            info["dataset_quality"] = dataset_quality(out / "d_plus", event)
        info["learn_seconds"] = time.perf_counter() - t0
        info["checkpoint"] = str(out / "model.pt")
        return info

    def rate(ckpt: Path, kind: str, n: int, trials: int, tc: TrialConfig) -> dict:
        key = f"rate/{ckpt}/{kind}/{n}/{trials}/{tc.camera}/{tc.noise}/{tc.replans}"
        return progress.get(key, lambda: evaluator.rate(ckpt, kind, n, trials, tc))

    def find_event(kind: str, n: int) -> str | None:
        log(f"== {kind}, {n} objects: finding the failure to learn from")
        for s in range(1000, 1020):
            r = run_trial(m0, ck0.version, make_task(kind, n, s, cfg), backend, tcfg, seed=0)
            if r.failure is not None:
                return str(save_event(r.failure, run_dir / kind / f"n{n}" / "events"))
        return None

    try:
        shared = {"original": parent_path, "replanning": parent_path}
        for method in [m for m in a.methods if m in RANDOM]:
            info = progress.get(f"random/learn/{method}", lambda: learn_cell(method, run_dir / "random" / method))
            result.setdefault("random_baselines", {})[method] = info
            if "error" in info:
                log(f"{method}: {info['error']}")
                continue
            shared[method] = Path(info["checkpoint"])
            log(f"{method}: learned in {info['learn_seconds']:.0f}s")
        for kind in a.tasks:
            tres: dict = {"events": {}, "methods": {m: dict(result.get("random_baselines", {}).get(m, {}))
                                                    for m in a.methods}}
            models3: dict = {}
            for n in a.object_counts:
                ev_path = progress.get(f"{kind}/{n}/event", lambda: find_event(kind, n))
                if not isinstance(ev_path, str):
                    log(f"{kind}/{n}: the pre-trained model did not fail on 20 instances; no learning at {n} objects")
                    continue
                event = load_event(ev_path)
                tres["events"][str(n)] = {"id": event.event_id, "task_seed": event.context["task_seed"],
                                          "mismatches": event.mismatches}
                ckpts = dict(shared)
                for method in [m for m in a.methods if m in LEARNED and m not in shared]:
                    info = progress.get(f"{kind}/{n}/learn/{method}", lambda: learn_cell(
                        method, run_dir / kind / f"n{n}" / method, event, Path(ev_path)))
                    tres["methods"][method].setdefault("learning", {})[str(n)] = info
                    if "error" in info:
                        log(f"{kind}/{n}/{method}: {info['error']}")
                        continue
                    ckpts[method] = Path(info["checkpoint"])
                    log(f"{kind}/{n}/{method}: learned in {info['learn_seconds']:.0f}s")
                for method in [m for m in a.methods if m in ckpts]:
                    cfg_m = TrialConfig(n_points=n_points, replans=2 if method == "replanning" else 0)
                    cell = rate(ckpts[method], kind, n, a.trials, cfg_m)
                    tres["methods"][method].setdefault("success", {})[str(n)] = cell
                    log(f"{kind}/{method}/{n} objects: {cell.get('successes', '-')}/{a.trials} {cell.get('outcomes', cell)}")
                if n == 3:
                    models3 = ckpts
            if "fail2progress" not in models3 or kind not in a.ablation_tasks:
                result["tasks"][kind] = tres
                continue
            compare = [m for m in ("original", "fail2progress") if m in models3]
            compare_gen = [m for m in GENERALIZATION_METHODS if m in models3]
            # Table 2 / A.14: learned from the 3-object failure, tested on 5/7 objects and unseen viewpoints.
            gen: dict = {"objects": {}, "viewpoints": {}}
            for n in (5, 7):
                gen["objects"][str(n)] = {m: rate(models3[m], kind, n, ab_trials, tcfg) for m in compare_gen}
                log(f"{kind} learned on 3 objects, tested on {n}: {gen['objects'][str(n)]}")
            for cam in a.viewpoints:
                gen["viewpoints"][cam] = {m: rate(models3[m], kind, 3, ab_trials, TrialConfig(n_points=n_points, camera=cam))
                                          for m in compare_gen}
                log(f"{kind} viewpoint {cam}: {gen['viewpoints'][cam]}")
            tres["generalization"] = gen
            # Fig. 3b: success vs point-cloud noise (isotropic Gaussian on every point).
            tres["noise_study"] = {}
            for sd in a.noise_levels:
                nz = NoiseModel(0.0, sd, 0.0) if sd > 0 else None
                tres["noise_study"][str(sd)] = {m: rate(models3[m], kind, 3, ab_trials, TrialConfig(n_points=n_points, noise=nz))
                                                for m in compare}
                log(f"{kind} noise {sd}: {tres['noise_study'][str(sd)]}")
            # A.5: number of particles vs success and optimisation time (M = --particles is the fail2progress run above).
            tres["particles_ablation"] = {}
            ev3 = progress.cells[f"{kind}/3/event"]
            for mp in a.particles_ablation:
                info = tres["methods"]["fail2progress"]["learning"]["3"] if mp == a.particles else progress.get(
                    f"{kind}/3/learn/fail2progress_M{mp}", lambda: learn_cell(
                        "fail2progress", run_dir / kind / "n3" / f"fail2progress_M{mp}", load_event(ev3), Path(ev3),
                        mp))
                if "error" in info:
                    tres["particles_ablation"][str(mp)] = info
                    continue
                cell = {"optimization_time_s": info["optimization_time_s"],
                        **rate(Path(info["checkpoint"]), kind, 3, ab_trials, tcfg)}
                tres["particles_ablation"][str(mp)] = cell
                log(f"{kind} M={mp}: {cell}")
            result["tasks"][kind] = tres
    finally:
        evaluator.close()
    result["total_seconds"] = time.perf_counter() - t_start
    write_outputs(result, Path(a.out))
    log(f"wrote {a.out}.json/.md/.png in {result['total_seconds']:.0f}s")
    return 0


def write_outputs(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    m_particles = result.get("particles", 20)
    unseen = bool(result.get("keep_unseen_after"))
    used = {"particles": m_particles, "epochs": result["epochs"], "lr": result.get("lr", 1e-4),
            "anchor_weight": result.get("anchor_weight", 0.0), "keep_unseen_after": unseen}
    named = [n for n, r in RECIPES.items() if all(r[k] == v for k, v in used.items())]
    recipe = (f"; M = {m_particles} particles, lr {used['lr']:g}, placement anchor weight {used['anchor_weight']:g}"
              + (", transitions with an object falling out of view kept" if unseen else "")
              + (" (the paper's recipe)" if named == ["paper"] else
                 f" (recipe `{named[0]}`, benchmarks/studies/README.md; not the paper's)" if named else " (not the paper's recipe)"))
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    lines = ["# Fail2Progress vs baselines after learning from one failure (simulated tasks, CPU)", "",
             f"Command: `{result['command']}`; {result['trials_per_cell']} trials per cell; parent model "
             f"`{result['parent_version']}`; fine-tuning {result['epochs']} epochs (large, large_task: {result['large_epochs']}){recipe}; "
             f"{result.get('ablation_trials', result['trials_per_cell'])} trials per ablation cell; "
             f"machine {result['machine']['platform']}, {result['machine']['cpu_count']} cores."
             + (" **QUICK SMOKE RUN — not a result.**" if result["quick"] else "")
             + (" Written with `--report-only` from the cells that runs with these settings finished; "
                "'not run' marks the cells they did not reach." if result.get("report_only") else ""), "",
             "Methods (paper 000 §6, A.16): **original** the pre-trained model; **replanning** the same model, "
             "planning again after a detected failure (up to 2 times); **small** / **large** fine-tuned with "
             f"{m_particles} / 2,000 random transitions of the pre-training distribution; **large_task** 2,000 random transitions "
             "of the tasks' own distribution (a reference, not a §6 baseline); **sampling** rejection sampling on "
             "the Fail2Progress objective; **gradient** per-particle gradient ascent (SVGD without the kernel); "
             "**fail2progress** SVGD over states then actions; **domain_randomization** random feasible states "
             f"with the failed action held constant. Every targeted method builds {m_particles} transitions around the one "
             "failure and fine-tunes identically. The packing task is not in the default `--tasks`: a packing "
             "plan takes 12-14 s on this CPU (`benchmarks/results/skill_effect.json`), 13x a transport plan, "
             "and its 2,700 trials (9 methods x 3 object counts x 100) would spend at least 5 hours in the first "
             "plan alone on 2 workers.", ""]
    run = [m for m in ALL_METHODS if any(m in t["methods"] for t in result["tasks"].values())]
    if run and len(run) < len(ALL_METHODS):
        missing = [m for m in ALL_METHODS if m not in run]
        lines += [f"Run here (`--methods`): {', '.join(run)}. Not run: {', '.join(missing)}, "
                  + ("a reference beyond §6, so every §6 / A.16 method is compared."
                     if set(missing) <= set(REFERENCES) else "so this is not the full comparison."), ""]
    totals = {m: [c for t in result["tasks"].values() for c in t["methods"].get(m, {}).get("success", {}).values()
                  if "success_rate" in c] for m in run}
    if any(totals.values()):
        lines += ["**Mean success over every task and object count:** " + "; ".join(
            f"{m} {np.mean([c['success_rate'] for c in cs]):.0%} ({sum(c['successes'] for c in cs)}/"
            f"{sum(c['trials'] for c in cs)}, {len(cs)} cell{'s' * (len(cs) != 1)})" for m, cs in totals.items() if cs) + ".", ""]
    for kind, tres in result["tasks"].items():
        counts = sorted({n for m in tres["methods"].values() for n in m.get("success", {})}, key=int)
        evs = ", ".join(f"{n} objects: task seed {e['task_seed']}" for n, e in tres["events"].items())
        lines += [f"## {kind}", "", f"Each method learned from ONE failure of the pre-trained model at the object count it "
                  f"is evaluated at ({evs}); learning figures are means over those events.", "",
                  "| method | " + " | ".join(f"{n} objects" for n in counts) + " | mean | learn s | optimisation s "
                  f"| D+ usable of {m_particles} | D+ failure-relation sat. | action std (3-obj. event) |",
                  "|---|" + "---|" * (len(counts) + 6)]
        for meth in [m for m in ALL_METHODS if m in tres["methods"]]:
            info = tres["methods"][meth]
            succ = info.get("success", {})
            learn_err = {n: r["error"] for n, r in info.get("learning", {}).items() if "error" in r}
            cells = [f"{succ[n]['successes']}/{succ[n]['trials']}" if "successes" in succ.get(n, {}) else
                     ("not run" if learn_err[n] == "not run" else f"learning failed ({learn_err[n]})") if n in learn_err
                     else succ.get(n, {}).get("error", "–")
                     for n in counts]
            rates = [c["success_rate"] for c in succ.values() if "success_rate" in c]
            mean = f"{np.mean(rates):.0%}" if rates else "–"
            runs = [r for r in info.get("learning", {}).values() if "error" not in r] or ([info] if "learn_seconds" in info else [])
            avg = lambda get: (lambda v: "–" if not v else f"{np.mean(v):.2f}")([x for x in map(get, runs) if x is not None])
            dq3 = (info.get("learning", {}).get("3") or {}).get("dataset_quality") or {}
            spread = dq3.get("action_spread_std")
            lines.append(f"| {meth} | " + " | ".join(cells) + f" | {mean} | {avg(lambda r: r.get('learn_seconds'))} | "
                         f"{avg(lambda r: r.get('optimization_time_s'))} | "
                         f"{avg(lambda r: (r.get('dataset_quality') or {}).get('transitions'))} | "
                         f"{avg(lambda r: (r.get('dataset_quality') or {}).get('failure_relation_satisfaction'))} | "
                         f"{'–' if not spread else ', '.join(f'{v:.2f}' for v in spread)} |")
        rated = {m: {n: c["success_rate"] for n, c in info.get("success", {}).items() if "success_rate" in c}
                 for m, info in tres["methods"].items()}
        means = {m: np.mean(list(r.values())) for m, r in rated.items() if r}
        base = {m: v for m, v in means.items() if m != "fail2progress" and m not in REFERENCES}
        if "fail2progress" in means and base:
            best = max(base, key=base.get)
            # a baseline with fewer finished cells is compared on its own cells, never on Fail2Progress's others
            shared = sorted(set(rated[best]) & set(rated["fail2progress"]), key=int)
            partial = set(rated[best]) != set(rated["fail2progress"])
            f2p = np.mean([rated["fail2progress"][n] for n in shared]) if shared else float("nan")
            lines += ["", f"**Fail2Progress mean {means['fail2progress']:.0%}; best baseline of paper §6 / A.16: "
                      f"{best} {base[best]:.0%}"
                      + (f" on the {', '.join(shared)}-object cell{'s' * (len(shared) != 1)} it ran, where Fail2Progress "
                         f"has {f2p:.0%}" if partial else "") + ".**"
                      + (" `large_task` is a reference, not a §6 baseline: 2,000 random "
                      "transitions of the tasks' own distribution, in which the held-out failure mode is common."
                                                       if "large_task" in means else "")]
        outcomes = {m: collections.Counter() for m in tres["methods"]}
        for m, info in tres["methods"].items():
            for c in info.get("success", {}).values():
                outcomes[m].update(c.get("outcomes", {}))
        lines += ["", "**Trial outcomes, all object counts:** " + "; ".join(
            f"{m}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for m, c in outcomes.items() if c)]
        frac = lambda c: f"{c['successes']}/{c['trials']}" if "successes" in c else c.get("error", "–")
        if "generalization" in tres:
            gen = tres["generalization"]
            cols = [m for m in GENERALIZATION_METHODS if any(m in r for part in gen.values() for r in part.values())]
            head = ["| " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            lines += ["", "**Learned from the 3-object failure, tested on more objects (Table 2):**", "",
                      "| objects " + head[0], head[1]]
            lines += [f"| {n} | " + " | ".join(frac(r.get(m, {})) for m in cols) + " |" for n, r in gen["objects"].items()]
            lines += ["", "**Unseen viewpoints (Table 2), 3 objects:**", "", "| viewpoint " + head[0], head[1]]
            lines += [f"| {cam} | " + " | ".join(frac(r.get(m, {})) for m in cols) + " |" for cam, r in gen["viewpoints"].items()]
        if tres.get("noise_study"):
            lines += ["", "**Point noise σ (Fig. 3b), 3 objects:**", "", "| σ (m) | original | fail2progress |", "|---|---|---|"]
            lines += [f"| {sd} | {frac(r.get('original', {}))} | {frac(r.get('fail2progress', {}))} |"
                      for sd, r in tres["noise_study"].items()]
        if tres.get("particles_ablation"):
            lines += ["", "**Particles M (A.5), 3 objects:**", "", "| M | optimisation s | success |", "|---|---|---|"]
            lines += [f"| {mp} | {'–' if r.get('optimization_time_s') is None else round(r['optimization_time_s'], 2)} | {frac(r)} |"
                      for mp, r in tres["particles_ablation"].items()]
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        write_plot(result, out.with_suffix(".png"))
    except Exception as e:  # the JSON and markdown are the result; the plot is a convenience
        print(f"[bench-f2p] no plot: {e}")


def write_plot(result: dict, path: Path) -> None:
    """Row 1: success per method and object count (Table 1); row 2: noise (Fig. 3b) and particles (A.5);
    row 3: optimisation time per method (Fig. 6)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = list(result["tasks"]) or ["none"]
    fig, axes = plt.subplots(3, len(tasks), figsize=(7 * len(tasks), 11.5), squeeze=False)
    for col, kind in enumerate(tasks):
        tres = result["tasks"].get(kind, {"methods": {}})
        ax = axes[0][col]
        meths = [m for m in ALL_METHODS if "success" in tres["methods"].get(m, {})]
        counts = sorted({n for m in meths for n in tres["methods"][m]["success"]}, key=int)
        w = 0.8 / max(1, len(counts))
        for j, n in enumerate(counts):
            ax.bar(np.arange(len(meths)) + j * w, [tres["methods"][m]["success"].get(n, {}).get("success_rate", 0) for m in meths],
                   w, label=f"{n} objects")
        ax.set_xticks(np.arange(len(meths)) + w * (len(counts) - 1) / 2)
        ax.set_xticklabels(meths, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("success rate")
        ax.set_title(f"{kind}: after learning from one failure")
        ax.legend(fontsize=8)
        ax = axes[1][col]
        for m in ("original", "fail2progress"):
            pts = [(float(sd), r[m]["success_rate"]) for sd, r in tres.get("noise_study", {}).items()
                   if "success_rate" in r.get(m, {})]
            if pts:
                ax.plot(*zip(*pts), "o-", label=f"{m} vs point noise σ (m)")
        pa = [(int(mp), r["success_rate"], r["optimization_time_s"]) for mp, r in tres.get("particles_ablation", {}).items()
              if "success_rate" in r]
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("point noise σ (m)")
        ax.set_ylabel("success rate, 3 objects")
        if pa:
            twin = ax.twiny()
            twin.plot([p[0] for p in pa], [p[1] for p in pa], "s--", color="tab:green", label="fail2progress vs particles M")
            if max(p[0] for p in pa) > 10 * min(p[0] for p in pa):
                twin.set_xscale("log")   # M = 5 ... 200 would crowd the small counts into one corner
            for mp, sr, t in pa:
                twin.annotate(f"{t:.1f}s", (mp, sr), fontsize=7, textcoords="offset points", xytext=(0, 5))
            twin.set_xlabel("particles M (labels: optimisation s)")
            twin.legend(fontsize=8, loc="lower right")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower left")
        elif not pa:   # an empty panel would read as "measured nothing": say the studies were not run
            ax.text(0.5, 0.5, "noise and particle studies not run\n(--ablation-tasks)", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
        ax = axes[2][col]
        times = {m: [r["optimization_time_s"] for r in tres["methods"].get(m, {}).get("learning", {}).values()
                     if r.get("optimization_time_s") is not None] for m in ALL_METHODS}
        times = {m: v for m, v in times.items() if v}
        ax.bar(list(times), [np.mean(v) for v in times.values()],
               yerr=[np.std(v) for v in times.values()], color="tab:gray", capsize=3)
        ax.set_ylabel("optimisation s (mean over events)")
        ax.set_title(f"{kind}: time to generate the {result.get('particles', 20)} (state, action) pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
