"""``f2p-learn``: the whole learn-from-failure step, from a saved failure event to a validated
checkpoint (paper 000 §4-5).

Stages (each printed with its time):

1. **load** the event (``f2p_failure.events``, integrity-checked) and the checkpoint that
   failed (a warning if its version differs from the event's ``model_version``);
2. **classify** (§4): Real2Sim replay of φ_F from O_F; a sim-to-real gap stops here (exit 3):
   simulated data would teach the wrong effect;
3. **infer** the M (state, action) pairs with the chosen method (``fail2progress``: SVGD on
   states, eq. 5, then on actions, eq. 7; or a §6 baseline), see :mod:`f2p_learning.targeted`;
   a diverging inference (NaN/inf log-density or particles, e.g. from a NaN checkpoint) stops
   here (exit 4); particles held at the edge of the feasible set are counted and reported;
4. **simulate** the pairs into D+ (Real2Sim scenes, φ_F executed, transitions recorded);
5. **fine-tune** Γ on all of D+ (paper: 200 epochs, Adam 1e-4; the last epoch's weights) with
   replay of original data drawn afresh each epoch, every D+ transition shown under random
   object relabellings (``f2p-train --relabel-objects``: the lesson holds for every object of
   the class, not only the failure's segment indices). D+ transitions flagged unstable are kept (only unseen segments are skipped): around a
   failure they are informative — e.g. a loaded bin left resting tilted on a table edge,
   penetrating it by ~2 cm, is exactly the "did not reach the other table" example the
   model lacks (measured: 10 of 20 D+ transitions of a transport failure). Opt-in,
   beyond the paper: ``--anchor-weight W`` keeps the parent's predictions of where each
   skill's target ends up over the whole parameter box (``f2p-train --anchor-weight``), so
   the child does not learn placements past a table's edge as "on it" from a D+ whose
   object starts in one spot (README, "placement anchor");
6. **validate** on a held-out regression set: relation-detection micro F1 and next-step
   accuracy of parent and child. A child worse than its parent by more than
   ``--regression-tolerance`` is written but marked ``deployable: false``.

Output folder: ``d_plus/`` (the dataset), ``model.pt`` (+ .sha256; ``training_data.lineage``
holds the parent version, event id, method, D+ manifest digest), ``learn_report.json``.

Usage::

    python -m f2p_learning.learn --event EVENT.f2pevent --checkpoint models/skill_effect_pretrained.pt \\
        --replay-data REPLAY --regression-data HELDOUT --out-dir out/learn
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from f2p_failure.classify import classify_failure
from f2p_failure.events import FailureEventError, load_event
from f2p_sim.config import load_world_config
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_skill_effect import train as f2p_train
from f2p_skill_effect.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from f2p_skill_effect.evaluate import evaluate_arrays
from f2p_skill_effect.model import build_model
from f2p_skill_effect.train import load_transitions

from .svgd import SVGDDivergedError
from .targeted import TARGETED_METHODS, infer_pairs, simulate_pairs

EXIT_SIM_TO_REAL = 3
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 4


def regression_scores(model, data) -> dict:
    res = evaluate_arrays(model, data)
    return {"detection_f1": res["detection"]["micro_f1"], "next_step_accuracy": res["next_step"]["accuracy"],
            "next_step_f1": res["next_step"]["micro_f1"], "transitions": res["transitions"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="f2p-learn", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--event", required=True, help="failure event file (.f2pevent)")
    p.add_argument("--checkpoint", required=True, help="the checkpoint that failed (the parent)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--method", default="fail2progress", choices=TARGETED_METHODS)
    p.add_argument("--particles", type=int, default=20, help="M (paper: 20)")
    p.add_argument("--svgd-steps", type=int, default=60)
    p.add_argument("--epochs", type=int, default=200, help="fine-tuning epochs (paper: 200)")
    p.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate (paper: 1e-4)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="fine-tuning batch size (measured on an organize D+: after 200 epochs at batch 16 the "
                        "model still put p < 0.5 on 8 of D+'s own 17 'item still inside' transitions, at batch 4 on 1)")
    p.add_argument("--replay-data", nargs="*", default=[], help="original data mixed into fine-tuning")
    p.add_argument("--replay-fraction", type=float, default=0.5)
    p.add_argument("--anchor-weight", type=float, default=0.0,
                   help="keep the parent's placement predictions over the skill's parameter box while fine-tuning "
                        "(f2p-train --anchor-weight; 0 = off, the paper's fine-tuning)")
    p.add_argument("--keep-unseen-after", action="store_true",
                   help="fine-tune on D+ transitions in which an object falls out of view too (f2p-train "
                        "--keep-unseen-after; default: skipped, as in the paper's pipeline)")
    p.add_argument("--regression-data", nargs="*", default=[], help="held-out data for the regression gate")
    p.add_argument("--regression-tolerance", type=float, default=0.02,
                   help="largest allowed drop of detection F1 or next-step accuracy")
    p.add_argument("--no-relabel-objects", dest="relabel_objects", action="store_false",
                   help="fine-tune on D+ in its recorded object order only (default: every D+ transition is shown "
                        "under random object relabellings, so the lesson holds for every object, see f2p-train)")
    p.add_argument("--skip-classification", action="store_true", help="learn even without a sim replay check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.particles < 2:
        p.error("--particles must be >= 2 (SVGD needs a kernel over several particles)")
    if not (a.anchor_weight >= 0 and a.anchor_weight < float("inf")):
        p.error("--anchor-weight must be a finite number >= 0")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    log = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"command": "python -m f2p_learning.learn " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "stages": {}, "method": a.method}
    t_all = time.perf_counter()

    def stage(name, t0, **info):
        report["stages"][name] = {"seconds": round(time.perf_counter() - t0, 3), **info}
        log(f"[f2p-learn] {name}: {time.perf_counter() - t0:.1f}s " + ", ".join(f"{k}={v}" for k, v in info.items()
                                                                           if not isinstance(v, (list, dict))))

    t0 = time.perf_counter()
    try:
        event = load_event(a.event)
        parent = load_checkpoint(a.checkpoint)
    except (FailureEventError, CheckpointError) as e:
        print(f"f2p-learn: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if event.model_version != parent.version:
        log(f"[f2p-learn] warning: event {event.event_id} was recorded with model {event.model_version}, "
            f"learning on checkpoint {parent.version}")
    model = build_model(parent.config)
    model.load_state_dict(parent.state_dict)
    model.eval()
    n_points = int(parent.training_data.get("points_per_object", 128))
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    report.update(event_id=event.event_id, parent_version=parent.version, skill=event.skill,
                  mismatches=event.mismatches)
    stage("load", t0, event=event.event_id, parent=parent.version, segments=event.num_segments)

    t0 = time.perf_counter()
    if a.skip_classification:
        stage("classify", t0, category="skipped")
    else:
        try:
            c = classify_failure(event, backend)
        except Exception as e:  # a scene Real2Sim cannot build is reported, not a crash
            print(f"f2p-learn: error: cannot replay the failure in simulation: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        stage("classify", t0, category=c.category, agreeing=c.agreeing, disagreeing=c.disagreeing)
        if c.category != "incorrect_prediction":
            report["deployable"] = False
            report["result"] = "sim_to_real_gap: not learnable from simulated data"
            (out / "learn_report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
            log("[f2p-learn] the simulator does not reproduce the observed outcome (sim-to-real gap): stopping")
            return EXIT_SIM_TO_REAL

    t0 = time.perf_counter()
    try:
        pairs = infer_pairs(a.method, model, event, n_points, (cfg["workspace"]["lower"], cfg["workspace"]["upper"]),
                            particles=a.particles, steps=a.svgd_steps, seed=a.seed)
    except SVGDDivergedError as e:   # NaN/inf log-density or particles: nothing to simulate, nothing to learn
        print(f"f2p-learn: error: {a.method} inference diverged: {e}", file=sys.stderr)
        report.update(result=f"inference diverged: {e}", deployable=False)
        (out / "learn_report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        return EXIT_DIVERGED
    np.savez(out / "particles.npz", offsets=pairs.offsets, actions=pairs.actions, states=pairs.state_particles,
             state_objective=pairs.state_objective, action_objective=pairs.action_objective)
    # Particles the priors' walls hold at the edge of the feasible set at the last step (SVGD
    # and Gradient): states beyond the offset box, actions leaving the target off every support.
    last = {k: pairs.history[k][-1].get("at_bound") for k in ("states", "actions") if pairs.history.get(k)}
    stage("infer", t0, optimisation_seconds=round(pairs.seconds, 3), particles=a.particles,
          state_objective_mean=float(np.mean(pairs.state_objective)),
          action_objective_mean=float(np.mean(pairs.action_objective)),
          states_at_bound=last.get("states"), actions_infeasible=last.get("actions"),
          rejection={k: v for k, v in pairs.history.items() if k.endswith("_rejection")} or None)
    if any(last.values()):
        log(f"[f2p-learn] warning: at the last SVGD step {last.get('states')} state and {last.get('actions')} action "
            f"particles of {a.particles} sit outside the feasible set (their D+ scenes may not build)")

    t0 = time.perf_counter()
    d_plus = out / "d_plus"
    try:
        manifest = simulate_pairs(event, pairs, backend, d_plus, seed=a.seed)
    except ValueError as e:   # no particle gave a scene Real2Sim can build, or one the camera saw whole
        print(f"f2p-learn: error: {e}", file=sys.stderr)
        report.update(result=f"no D+: {e}", deployable=False)
        (out / "learn_report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
        return EXIT_BAD_INPUT
    stage("simulate", t0, transitions=manifest["built"], usable=manifest["usable"], skipped=len(manifest["skipped"]),
          flagged=manifest["flagged"], skipped_reasons=manifest["skipped"])

    t0 = time.perf_counter()
    child_path = out / "model.pt"
    lineage = {"parent_version": parent.version, "event_id": event.event_id, "method": a.method,
               "d_plus": str(d_plus), "d_plus_shard_sha256": manifest["shards"][0]["sha256"],
               "particles": a.particles}
    targs = ["--data", str(d_plus), "--out", str(child_path), "--init-checkpoint", a.checkpoint,
             "--epochs", str(a.epochs), "--lr", str(a.lr), "--batch-size", str(a.batch_size), "--seed", str(a.seed), "--points", str(n_points),
             "--val-fraction", "0", "--lineage-json", json.dumps(lineage), "--keep-unstable",
             "--log-every", str(max(1, a.epochs // 10))]
    if a.relabel_objects:
        targs.append("--relabel-objects")
    if a.keep_unseen_after:
        targs.append("--keep-unseen-after")
    if a.anchor_weight > 0:
        targs += ["--anchor-weight", str(a.anchor_weight)]
    if a.replay_data and a.replay_fraction > 0:
        targs += ["--replay-data", *a.replay_data, "--replay-fraction", str(a.replay_fraction)]
    if a.quiet:
        targs.append("--quiet")
    rc = f2p_train.main(targs)
    if rc != 0:
        print(f"f2p-learn: error: fine-tuning failed (exit {rc})", file=sys.stderr)
        return rc
    stage("fine_tune", t0, epochs=a.epochs)

    t0 = time.perf_counter()
    child = load_checkpoint(child_path)
    child_model = build_model(child.config)
    child_model.load_state_dict(child.state_dict)
    gate: dict = {"tolerance": a.regression_tolerance}
    if a.regression_data:
        data = load_transitions(a.regression_data, n_points, parent.config.max_objects, a.seed)
        before, after = regression_scores(model, data), regression_scores(child_model, data)
        drop = max(before["detection_f1"] - after["detection_f1"], before["next_step_accuracy"] - after["next_step_accuracy"])
        gate.update(parent=before, child=after, worst_drop=drop, deployable=bool(drop <= a.regression_tolerance))
    else:
        gate.update(deployable=False, reason="no --regression-data: not validated")
    child.metrics = {**child.metrics, "regression_gate": gate, "deployable": gate["deployable"]}
    digest = save_checkpoint(child_path, child)
    stage("validate", t0, deployable=gate["deployable"], worst_drop=gate.get("worst_drop"))
    report.update(child_version=child.version, child_sha256=digest, deployable=gate["deployable"],
                  regression_gate=gate, lineage=lineage, total_seconds=round(time.perf_counter() - t_all, 3),
                  result="learned")
    (out / "learn_report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    log(f"[f2p-learn] wrote {child_path} version {child.version} (parent {parent.version}), "
        f"deployable={gate['deployable']}, total {report['total_seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
