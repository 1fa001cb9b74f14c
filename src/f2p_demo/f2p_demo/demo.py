"""``make demo``: the learn-from-failure loop end to end on the simulated robot (CPU).

1. the shipped pre-trained model Γ (``skill_effect_pretrained.pt``, installed with
   ``f2p_skill_effect``, integrity-checked) plans a Multi-object Transport task (3 objects) and
   the robot executes it in MuJoCo;
2. after the step, the observed relations differ from the predicted ones: a failure event is
   recorded (``<out>/events/``) and classified by Real2Sim replay (paper 000 §4);
3. learning (:func:`f2p_learning.learn.learn`): SVGD over states and actions (M = 20), D+
   simulated, Γ fine-tuned (200 epochs) with replay, checked on a held-out regression set
   (paper 000 §5);
4. the new weights are swapped in, the same task is planned again and succeeds; both models
   are then compared on fresh task instances the learner never saw.

``run_demo(DemoConfig) -> DemoResult`` writes ``report.md`` with pictures (scene before/after
the failed step, the SVGD particles) and ``demo.json`` to the output folder. Small replay /
regression datasets are generated on first use (hold-out distribution, cached there).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from f2p_common.vocabulary import MOVABLE_CLASSES, skill
from f2p_failure.events import save_event
from f2p_sim.config import load_world_config
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_sim.episode import TrialConfig, run_trial
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera
from f2p_sim.tasks import make_task
from f2p_skill_effect.checkpoint import load_model, shipped_model
from f2p_training.train import FineTuneRecipe

from f2p_learning.classify import classify_failure
from f2p_learning.learn import LearnConfig, learn

#: (name, datagen seed, transitions) of the demo's replay and regression data.
DEMO_DATA = (("replay", 2, 400), ("regression", 3, 300))
#: Task seeds of the fresh instances both models are compared on (never the failure's).
EVALUATION_SEED_BASE = 20000


@dataclass
class DemoConfig:
    """out: output folder; checkpoint: the model that fails (None: the shipped pre-trained one);
    task, objects, task_seed: the task instance it fails on; eval_trials: fresh instances per
    model for the comparison; epochs: fine-tuning epochs; seed: learning and trial seed."""

    out: str | Path = "out/demo"
    checkpoint: str | Path | None = None
    task: str = "transport"
    objects: int = 3
    task_seed: int = 1000
    eval_trials: int = 10
    epochs: int = FineTuneRecipe.epochs
    seed: int = 0


@dataclass
class DemoResult:
    """What happened: the first attempt's outcome, the learn step's outcome and the retry's, and
    successes of both models on the fresh instances (``None`` where the demo stopped before)."""

    before: str
    event_id: str | None = None
    category: str | None = None
    learn_outcome: str | None = None
    child_version: str | None = None
    deployable: bool = False
    after: str | None = None
    pretrained_successes: int | None = None
    learned_successes: int | None = None
    trials: int = 0
    report: Path | None = None
    summary: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.after == "success"


class _Stages:
    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def __call__(self, title: str):
        self.n += 1
        print(f"\n[f2p demo] ({self.n}/{self.total}) {title}  [{time.perf_counter() - self.t0:.0f}s]", flush=True)


def _render(backend, camera, path: Path) -> str | None:
    """A camera picture of the current scene, or None without a GL backend."""
    try:
        from f2p_sim.observation import render_images
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.imsave(path, render_images(backend, camera)["rgb"])
        return path.name
    except Exception as e:  # rendering is illustration only: say so and go on
        print(f"[f2p demo]   (no picture: {e})")
        return None


def plot_particles(event, particles_npz: Path, path: Path) -> str:
    """The SVGD state and action particles of a learn step next to the failure, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    p = np.load(particles_npz)
    off, act = p["offsets"], p["actions"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.6))
    for i, (cloud, label, name) in enumerate(zip(event.observation_before, event.segment_labels, event.segment_ids)):
        c = cloud.mean(0)
        if label not in MOVABLE_CLASSES:
            ax[0].scatter(cloud[::7, 0], cloud[::7, 1], s=1, c="0.8")
            continue
        moved = c[None, :2] + off[:, i, :2]
        ax[0].scatter(moved[:, 0], moved[:, 1], s=14, label=f"{name} ({label})")
        ax[0].scatter([c[0]], [c[1]], marker="x", c="k", s=40)
    ax[0].set_title("SVGD state particles: object centres (x = O_F)")
    ax[0].set_xlabel("x (m)")
    ax[0].set_ylabel("y (m)")
    ax[0].axis("equal")
    ax[0].legend(fontsize=7, loc="best")
    names = skill(event.skill).parameter_names
    ax[1].scatter(act[:, 0], act[:, 1], c=act[:, 2] if act.shape[1] > 2 else None, cmap="viridis", s=24)
    ax[1].scatter([event.params[0]], [event.params[1]], marker="x", c="r", s=60, label="failed a_F")
    ax[1].set_xlabel(f"{names[0]}")
    ax[1].set_ylabel(f"{names[1]}")
    ax[1].set_title(f"SVGD action particles for {event.skill}" + (f" (colour: {names[2]})" if len(names) > 2 else ""))
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def demo_data(folder: Path) -> dict[str, str]:
    """The demo's replay and regression datasets (:data:`DEMO_DATA`, hold-out distribution):
    generated into ``folder`` on first use, then reused."""
    data = {}
    for name, seed, n in DEMO_DATA:
        sub = Path(folder) / name
        if not (sub / "manifest.json").is_file():
            generate(DatagenConfig(sub, DatagenParams(transitions=n, seed=seed, hold_out_failure_modes=True,
                                                      steps_per_scene=8),
                                   workers=min(2, os.cpu_count() or 1), progress=False))
        data[name] = str(sub)
    return data


def successes(model, version, kind, n, seeds, backend, trial_cfg) -> int:
    """Trials of ``model`` that succeed on the task instances ``seeds``."""
    return sum(run_trial(model, version, make_task(kind, n, s, backend.cfg), backend, trial_cfg, seed=s).success
               for s in seeds)


def _describe_plan(result, names) -> str:
    return (f"plan: {[(s, names[t]) for s, t in result.plan.skeleton]} params "
            f"{[[round(v, 3) for v in p] for p in result.plan.parameters]}, "
            f"predicted p(goal) = {result.goal_probability:.3f}")


def run_demo(cfg: DemoConfig) -> DemoResult:
    """The demo (module docstring); progress on stdout, the report in ``cfg.out``."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ck_path = Path(cfg.checkpoint) if cfg.checkpoint else shipped_model("skill_effect_pretrained.pt")
    stage = _Stages(6)
    summary: dict = {"task": cfg.task, "objects": cfg.objects, "task_seed": cfg.task_seed}

    def done(result: DemoResult) -> DemoResult:
        result.summary = summary
        (out / "demo.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        return result

    stage(f"load the shipped pre-trained model {ck_path}")
    model, ck = load_model(ck_path)
    print(f"[f2p demo]   version {ck.version}, trained on {ck.training_data.get('transitions')} transitions "
          f"(failure modes held out of its data on purpose: see the models' README)")
    world = load_world_config()
    backend = MujocoBackend(world)
    camera = Camera.from_config(world, "front")
    trial_cfg = TrialConfig(n_points=int(ck.training_data.get("points_per_object", 128)))

    stage("replay and regression data (hold-out distribution; generated once, cached)")
    data = demo_data(out / "data")

    stage(f"plan and execute {cfg.task} with {cfg.objects} objects (task seed {cfg.task_seed}) using the pre-trained model")
    task = make_task(cfg.task, cfg.objects, cfg.task_seed, world)
    print(f"[f2p demo]   goal: {' ∧ '.join(map(str, task.goal))}")
    backend.load(task.scene)
    pic_before = _render(backend, camera, out / "scene_before.png")
    r = run_trial(model, ck.version, task, backend, trial_cfg, seed=cfg.seed)
    pic_after = _render(backend, camera, out / "scene_after_failure.png")
    names = [s.name for s in backend.segments]
    print(f"[f2p demo]   {_describe_plan(r, names)}")
    print(f"[f2p demo]   outcome: {r.outcome}")
    summary["before"] = {"outcome": r.outcome, "plan": r.plan.skeleton, "goal_probability": r.goal_probability}
    result = DemoResult(before=r.outcome)
    if r.failure is None:
        print("[f2p demo]   the pre-trained model did not fail on this task: nothing to learn from. "
              "Try another --task-seed.")
        return done(result)
    ev = r.failure
    for m in ev.mismatches:
        obj = "" if m["object"] is None else f", {names[m['object']]}"
        print(f"[f2p demo]   mismatch: {m['predicate']}({names[m['subject']]}{obj}) predicted p={m['predicted']:.2f}, "
              f"observed {m['observed']}")
    ev_path = save_event(ev, out / "events")
    c = classify_failure(ev, backend)
    print(f"[f2p demo]   failure event {ev.event_id} saved to {ev_path}; classified: {c.category} "
          f"(simulation reproduces {len(c.agreeing)}/{len(ev.mismatches)} observed relations)")
    summary["event"] = {"id": ev.event_id, "path": str(ev_path), "category": c.category, "mismatches": ev.mismatches}
    result.event_id, result.category = ev.event_id, c.category

    stage("learn from the failure: SVGD (states, actions) -> D+ in simulation -> fine-tune -> regression gate")
    learn_dir = out / "learn"
    rep = learn(LearnConfig(event=ev_path, checkpoint=ck_path, out_dir=learn_dir, replay_data=[data["replay"]],
                            regression_data=[data["regression"]], fine_tune=FineTuneRecipe(epochs=cfg.epochs),
                            seed=cfg.seed, fresh=True, log=lambda msg: print(msg, flush=True)))
    result.learn_outcome = rep.outcome
    if rep.outcome != "learned":
        print(f"[f2p demo]   learning stopped ({rep.result}); see {learn_dir / 'learn_report.json'}")
        return done(result)
    for name, st in rep.stages.items():
        print(f"[f2p demo]   {name:<10} {st['seconds']:7.1f} s")
    gate = rep.regression_gate
    print(f"[f2p demo]   new model {rep.child_version} (parent {rep.parent_version}), deployable: {rep.deployable}; "
          f"regression: detection F1 {gate['reference']['detection_f1']:.3f} -> {gate['child']['detection_f1']:.3f}")
    pic_particles = plot_particles(ev, learn_dir / "particles.npz", out / "svgd_particles.png")
    summary["learn"] = {"child_version": rep.child_version, "deployable": rep.deployable, "regression_gate": gate,
                        "total_seconds": rep.total_seconds}
    result.child_version, result.deployable = rep.child_version, rep.deployable
    if not rep.deployable:           # nothing the regression gate refused is swapped in
        why = gate.get("reason") or f"worst drop {gate.get('worst_drop')} > tolerance {gate.get('tolerance')}"
        print(f"[f2p demo]   the regression gate refused the child ({why}): the pre-trained model keeps serving")
        return done(result)

    stage("hot-swap the new weights and retry the same task")
    model2, ck2 = load_model(rep.checkpoint)
    r2 = run_trial(model2, ck2.version, task, backend, trial_cfg, seed=cfg.seed)
    pic_retry = _render(backend, camera, out / "scene_after_retry.png")
    print(f"[f2p demo]   {_describe_plan(r2, names)}")
    print(f"[f2p demo]   outcome: {r2.outcome}")
    summary["after"] = {"outcome": r2.outcome, "plan": r2.plan.skeleton if r2.plan else None,
                        "goal_probability": r2.goal_probability}
    result.after = r2.outcome

    stage(f"compare both models on {cfg.eval_trials} fresh {cfg.task}-{cfg.objects} instances (seeds never used above)")
    seeds = list(range(EVALUATION_SEED_BASE, EVALUATION_SEED_BASE + cfg.eval_trials))
    w0 = successes(model, ck.version, cfg.task, cfg.objects, seeds, backend, trial_cfg)
    w1 = successes(model2, ck2.version, cfg.task, cfg.objects, seeds, backend, trial_cfg)
    print(f"[f2p demo]   success: pre-trained {w0}/{len(seeds)}, after learning from one failure {w1}/{len(seeds)}")
    summary["comparison"] = {"seeds": seeds, "pretrained_successes": w0, "learned_successes": w1}
    result.pretrained_successes, result.learned_successes, result.trials = w0, w1, len(seeds)

    lines = [f"# f2p demo: learning from one failure ({cfg.task}, {cfg.objects} objects)", "",
             f"Goal: `{' ∧ '.join(map(str, task.goal))}`", "",
             f"1. Pre-trained model `{ck.version}` planned {r.plan.skeleton} and the robot executed it: "
             f"**{r.outcome}**.", ""]
    lines += [f"   - mismatch `{m['predicate']}({names[m['subject']]}"
              + ("" if m["object"] is None else f", {names[m['object']]}") + f")`: predicted p = {m['predicted']:.2f}, "
              f"observed {m['observed']}" for m in ev.mismatches]
    lines += ["", f"2. Failure event `{ev.event_id}` classified as **{c.category}** by Real2Sim replay.", "",
              f"3. Fail2Progress: {rep.stages['infer']['seconds']:.1f} s SVGD ({rep.config['particles']} state and "
              f"action particles), {rep.stages['simulate']['transitions']} D+ transitions, fine-tuning "
              f"{rep.stages['fine_tune']['seconds']:.0f} s; new model `{rep.child_version}`, deployable: {rep.deployable}.",
              "", f"4. Retry with the new model: **{r2.outcome}**.", "",
              f"5. Fresh instances: pre-trained {w0}/{len(seeds)}, learned {w1}/{len(seeds)} successes.", ""]
    for title, pic in (("Scene before", pic_before), ("After the failed step (pre-trained model)", pic_after),
                       ("After the retry (learned model)", pic_retry), ("SVGD particles", pic_particles)):
        if pic:
            lines += [f"### {title}", "", f"![{title}]({pic})", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    result.report = out / "report.md"
    print(f"\n[f2p demo] done in {time.perf_counter() - stage.t0:.0f}s: report {out / 'report.md'}")
    return done(result)


def main(argv=None) -> int:
    d = DemoConfig()
    p = argparse.ArgumentParser(prog="f2p-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=str(d.out))
    p.add_argument("--checkpoint", default=None, help="the model that fails (default: the shipped pre-trained one)")
    p.add_argument("--task", default=d.task, choices=("transport", "organize"))
    p.add_argument("--objects", type=int, default=d.objects, choices=(3, 5, 7))
    p.add_argument("--task-seed", type=int, default=d.task_seed)
    p.add_argument("--eval-trials", type=int, default=d.eval_trials, help="fresh task instances per model")
    p.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs")
    p.add_argument("--seed", type=int, default=d.seed)
    a = p.parse_args(argv)
    result = run_demo(DemoConfig(a.out, a.checkpoint, a.task, a.objects, a.task_seed, a.eval_trials, a.epochs, a.seed))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
