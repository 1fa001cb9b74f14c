"""``make demo``: the learn-from-failure loop end to end on the simulated robot (CPU).

1. the shipped pre-trained model Γ (``models/skill_effect_pretrained.pt``, checked) plans a
   Multi-object Transport task (3 objects) and the robot executes it in MuJoCo;
2. after the step, the observed relations differ from the predicted ones: a failure event is
   recorded (``out/demo/events/``) and classified by Real2Sim replay (paper 000 §4);
3. ``f2p-learn``: SVGD over states and actions (M = 20), D+ simulated, Γ fine-tuned
   (200 epochs) with replay, checked on a held-out regression set (paper 000 §5);
4. the new weights are swapped in, the same task is planned again and succeeds; both models
   are then compared on fresh task instances the learner never saw.

Writes ``report.md`` with pictures (scene before/after the failed step, the SVGD particles)
and ``demo.json`` to the output folder. Small replay / regression datasets are generated on
first use (hold-out distribution, cached in the output folder).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve()


def _repo_root() -> Path:
    env = os.environ.get("F2P_REPO")
    if env:
        return Path(env)
    for p in REPO.parents:
        if (p / "models" / "skill_effect_pretrained.pt").is_file():
            return p
    return Path.cwd()


class Stage:
    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def __call__(self, title: str):
        self.n += 1
        print(f"\n[f2p demo] ({self.n}/{self.total}) {title}  [{time.perf_counter() - self.t0:.0f}s]", flush=True)


def _load(path):
    from f2p_skill_effect.checkpoint import load_model
    model, ck = load_model(path)
    return ck, model


def _render(backend, camera, path: Path) -> str | None:
    """A camera picture of the current scene, or None without a GL backend."""
    try:
        from f2p_sim.observation import render_images
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        img = render_images(backend, camera)["rgb"]
        plt.imsave(path, img)
        return path.name
    except Exception as e:  # rendering is illustration only: say so and go on
        print(f"[f2p demo]   (no picture: {e})")
        return None


def _plot_particles(event, particles_npz: Path, path: Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from f2p_relations.relations import MOVABLE_CLASSES
    from f2p_common.vocabulary import SKILLS
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
    names = SKILLS[event.skill].parameter_names
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


def _success_rate(model, version, kind, n, seeds, backend, cfg_trial):
    from f2p_failure.episode import run_trial
    from f2p_sim.tasks import make_task
    wins = 0
    for s in seeds:
        r = run_trial(model, version, make_task(kind, n, s, backend.cfg), backend, cfg_trial, seed=s)
        wins += r.success
    return wins


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="f2p-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/demo")
    p.add_argument("--checkpoint", default=None, help="default: models/skill_effect_pretrained.pt")
    p.add_argument("--task", default="transport", choices=("transport", "organize"))
    p.add_argument("--objects", type=int, default=3, choices=(3, 5, 7))
    p.add_argument("--task-seed", type=int, default=1000)
    p.add_argument("--eval-trials", type=int, default=10, help="fresh task instances per model for the comparison")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.manual_seed(a.seed)
    from f2p_failure.classify import classify_failure
    from f2p_failure.episode import TrialConfig, run_trial
    from f2p_failure.events import save_event
    from f2p_sim.config import load_world_config
    from f2p_sim.datagen import main as datagen
    from f2p_sim.mujoco_backend import MujocoBackend
    from f2p_sim.observation import Camera
    from f2p_sim.tasks import make_task
    from f2p_learning import learn

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    root = _repo_root()
    ck_path = Path(a.checkpoint) if a.checkpoint else root / "models" / "skill_effect_pretrained.pt"
    stage = Stage(6)
    summary: dict = {"task": a.task, "objects": a.objects, "task_seed": a.task_seed}

    stage(f"load the shipped pre-trained model {ck_path}")
    ck, model = _load(ck_path)
    print(f"[f2p demo]   version {ck.version}, trained on {ck.training_data.get('transitions')} transitions "
          f"(failure modes held out of its data on purpose: models/README.md)")
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    camera = Camera.from_config(cfg, "front")
    tcfg = TrialConfig(n_points=int(ck.training_data.get("points_per_object", 128)))

    stage("replay and regression data (hold-out distribution; generated once, cached)")
    data = {}
    for name, seed, n in (("replay", 2, 400), ("regression", 3, 300)):
        folder = out / "data" / name
        if not (folder / "manifest.json").is_file():
            datagen(["--out", str(folder), "--transitions", str(n), "--seed", str(seed), "--hold-out-failure-modes",
                     "--steps-per-scene", "8", "--workers", str(min(2, os.cpu_count() or 1)), "--no-progress"])
        data[name] = str(folder)

    stage(f"plan and execute {a.task} with {a.objects} objects (task seed {a.task_seed}) using the pre-trained model")
    task = make_task(a.task, a.objects, a.task_seed, cfg)
    print(f"[f2p demo]   goal: {' ∧ '.join(map(str, task.goal))}")
    backend.load(task.scene)
    pic_before = _render(backend, camera, out / "scene_before.png")
    r = run_trial(model, ck.version, task, backend, tcfg, seed=a.seed)
    pic_after = _render(backend, camera, out / "scene_after_failure.png")
    names = [s.name for s in backend.segments]
    print(f"[f2p demo]   plan: {[(s, names[t]) for s, t in r.plan.skeleton]} params "
          f"{[[round(v, 3) for v in p] for p in r.plan.parameters]}, predicted p(goal) = {r.goal_probability:.3f}")
    print(f"[f2p demo]   outcome: {r.outcome}")
    summary["before"] = {"outcome": r.outcome, "plan": r.plan.skeleton, "goal_probability": r.goal_probability}
    if r.failure is None:
        print("[f2p demo]   the pre-trained model did not fail on this task: nothing to learn from. "
              "Try another --task-seed.")
        (out / "demo.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        return 1
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

    stage("learn from the failure: SVGD (states, actions) -> D+ in simulation -> fine-tune -> regression gate")
    learn_dir = out / "learn"
    rc = learn.main(["--event", str(ev_path), "--checkpoint", str(ck_path), "--out-dir", str(learn_dir),
                     "--replay-data", data["replay"], "--regression-data", data["regression"],
                     "--epochs", str(a.epochs), "--seed", str(a.seed)])   # its stages and every tenth epoch
    if rc != 0:
        print(f"[f2p demo]   learning stopped (exit {rc}); see {learn_dir / 'learn_report.json'}")
        return rc
    rep = json.loads((learn_dir / "learn_report.json").read_text())
    for name, st in rep["stages"].items():
        print(f"[f2p demo]   {name:<10} {st['seconds']:7.1f} s")
    print(f"[f2p demo]   new model {rep['child_version']} (parent {rep['parent_version']}), deployable: {rep['deployable']}; "
          f"regression: detection F1 {rep['regression_gate']['parent']['detection_f1']:.3f} -> "
          f"{rep['regression_gate']['child']['detection_f1']:.3f}")
    pic_particles = _plot_particles(ev, learn_dir / "particles.npz", out / "svgd_particles.png")
    summary["learn"] = {k: rep[k] for k in ("child_version", "deployable", "regression_gate", "total_seconds")}

    stage("hot-swap the new weights and retry the same task")
    ck2, model2 = _load(learn_dir / "model.pt")
    r2 = run_trial(model2, ck2.version, task, backend, tcfg, seed=a.seed)
    pic_retry = _render(backend, camera, out / "scene_after_retry.png")
    print(f"[f2p demo]   plan: {[(s, names[t]) for s, t in r2.plan.skeleton]} params "
          f"{[[round(v, 3) for v in p] for p in r2.plan.parameters]}, predicted p(goal) = {r2.goal_probability:.3f}")
    print(f"[f2p demo]   outcome: {r2.outcome}")
    summary["after"] = {"outcome": r2.outcome, "plan": r2.plan.skeleton if r2.plan else None,
                        "goal_probability": r2.goal_probability}

    stage(f"compare both models on {a.eval_trials} fresh {a.task}-{a.objects} instances (seeds never used above)")
    seeds = list(range(20000, 20000 + a.eval_trials))
    w0 = _success_rate(model, ck.version, a.task, a.objects, seeds, backend, tcfg)
    w1 = _success_rate(model2, ck2.version, a.task, a.objects, seeds, backend, tcfg)
    print(f"[f2p demo]   success: pre-trained {w0}/{len(seeds)}, after learning from one failure {w1}/{len(seeds)}")
    summary["comparison"] = {"seeds": seeds, "pretrained_successes": w0, "learned_successes": w1}

    lines = [f"# f2p demo: learning from one failure ({a.task}, {a.objects} objects)", "",
             f"Goal: `{' ∧ '.join(map(str, task.goal))}`", "",
             f"1. Pre-trained model `{ck.version}` planned {r.plan.skeleton} and the robot executed it: "
             f"**{r.outcome}**.", ""]
    lines += [f"   - mismatch `{m['predicate']}({names[m['subject']]}"
              + ("" if m["object"] is None else f", {names[m['object']]}") + f")`: predicted p = {m['predicted']:.2f}, "
              f"observed {m['observed']}" for m in ev.mismatches]
    lines += ["", f"2. Failure event `{ev.event_id}` classified as **{c.category}** by Real2Sim replay.", "",
              f"3. Fail2Progress: {rep['stages']['infer']['seconds']:.1f} s SVGD (20 state and action particles), "
              f"{rep['stages']['simulate']['transitions']} D+ transitions, fine-tuning {rep['stages']['fine_tune']['seconds']:.0f} s; "
              f"new model `{rep['child_version']}`, deployable: {rep['deployable']}.", "",
              f"4. Retry with the new model: **{r2.outcome}**.", "",
              f"5. Fresh instances: pre-trained {w0}/{len(seeds)}, learned {w1}/{len(seeds)} successes.", ""]
    for title, pic in (("Scene before", pic_before), ("After the failed step (pre-trained model)", pic_after),
                       ("After the retry (learned model)", pic_retry), ("SVGD particles", pic_particles)):
        if pic:
            lines += [f"### {title}", "", f"![{title}]({pic})", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "demo.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"\n[f2p demo] done in {time.perf_counter() - stage.t0:.0f}s: report {out / 'report.md'}")
    return 0 if r2.success else 1


if __name__ == "__main__":
    sys.exit(main())
