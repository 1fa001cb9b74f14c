"""Γ on what the robot perceives (issue 45 part 3), measured both ways: relation detection and
next-step prediction on held-out transitions whose observations are

* perceived — the camera's organised 640x480 depth cloud with a structured-light sensor's noise
  (depth 4 mm, points 2 mm, 10 % missing returns), segmented by the robot's backend
  (``geometric``, ``convex``) as the perception node does (``f2p_datasets.perceived``): what Γ
  meets on a robot;
* the simulator's own segments (a segmenting camera, no noise): what Γ was pre-trained on, and
  the paper's scenes, on which a model must stay as good.

Labels are the simulator's relations in every set. Held-out sets are generated here (datagen
seeds that no training run uses) unless ``--work`` already holds them; the same failure modes
are held out as in pre-training (``--hold-out-failure-modes``).

Detection scores miss what a planner does with a model: it searches for the action the model
is most sure of, and a model wrong off its training distribution is found out there. So, per
``--plan-models`` model, fresh transport-3 scenes (``--plans``, seeds from 7000) are planned
for as the robot does — perceived by ``geometric`` (two frames, tracked, the goal grounded by
the simulator's boxes) or by the simulator's segments — with the planner's default settings,
and every plan checked by Guardian's symbolic verifier, up to three plans as the executor tries.
Reported: the first plan accepted, a plan accepted within three, and "sure and wrong": a refused
plan the model gave p(goal) ≥ 0.05 (a pre-trained model never saw a loaded container carried,
so on a correct plan it expects the items to stay behind: p ≈ 0).

``python benchmarks/perceived_model.py`` writes results/perceived_model.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from f2p_datasets.perceived import SENSOR_NOISE

RESULTS = Path(__file__).resolve().parent / "results"
#: Held-out sets: name -> (datagen seed, layout, perception); seeds 40-44, never a training seed.
SETS = {"real_scale, geometric": (40, "real_scale", "geometric"),
        "real_scale, convex": (41, "real_scale", "convex"),
        "paper, geometric": (42, "paper", "geometric"),
        "real_scale, simulator": (43, "real_scale", "simulator"),
        "paper, simulator": (44, "paper", "simulator")}


def held_out(work: Path, name: str, transitions: int) -> Path:
    """The folder of held-out set ``name`` (generated, or resumed, there)."""
    from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
    seed, layout, perception = SETS[name]
    noise = dict(zip(("depth_std", "point_std", "dropout"), SENSOR_NOISE)) if perception != "simulator" else {}
    folder = work / name.replace(", ", "_")
    generate(DatagenConfig(folder, DatagenParams(transitions=transitions, seed=seed, layout=layout, perception=perception,
                                                 steps_per_scene=8, hold_out_failure_modes=True, **noise),
                           progress=False))
    return folder


def run(models: list[str], work: Path, transitions: int, say=print) -> dict:
    import torch

    from f2p_skill_effect.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
    from f2p_training.evaluate import evaluate_arrays
    from f2p_training.transitions import load_transitions
    out = {"sets": {}, "models": {}}
    loaded = {}
    for m in models:
        ck = load_checkpoint(checkpoint_path(m))
        loaded[m] = (model_from_checkpoint(ck).eval(), ck)
        out["models"][m] = {"version": ck.version, "parent": ck.parent_version, "scores": {}}
    for name in SETS:
        t0 = time.perf_counter()
        folder = held_out(work, name, transitions)
        say(f"[perceived-model] {name}: {folder} ({time.perf_counter() - t0:.0f} s)")
        for m, (model, ck) in loaded.items():
            data = load_transitions([folder], int(ck.training_data.get("points_per_object", 128)),
                                    ck.config.max_objects, 0)
            with torch.no_grad():
                res = evaluate_arrays(model, data)
            out["sets"][name] = {"transitions": int(res["transitions"]), "folder": str(folder)}
            out["models"][m]["scores"][name] = {"detection_f1": round(res["detection"]["micro_f1"], 4),
                                                "next_step_accuracy": round(res["next_step"]["accuracy"], 4),
                                                "next_step_f1": round(res["next_step"]["micro_f1"], 4)}
            say(f"[perceived-model]   {m}: detection F1 {res['detection']['micro_f1']:.3f}, "
                f"next-step accuracy {res['next_step']['accuracy']:.3f}")
    return out


def plan_trials(model_name: str, layout: str, segments: str, trials: int, say=print) -> dict:
    """The planning measurement of the module docstring for one model and one kind of segments."""
    import numpy as np
    import torch

    from f2p_common.interfaces import SegmentedScene, SkillCall
    from f2p_guardian.symbolic import SymbolicVerifier
    from f2p_guardian.verifier import PlanQuery
    from f2p_guardian.world import SceneFacts
    from f2p_perception.segmentation import SEGMENTERS, SensorFrame, perceive
    from f2p_perception.tracking import SegmentTracker, ground
    from f2p_planner.model_slot import LoadedModel
    from f2p_planner.planning import PlanningSettings, plan_task
    from f2p_sim.config import load_world_config
    from f2p_sim.observation import NoiseModel
    from f2p_sim.robot import SimRobot
    from f2p_skill_effect.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
    ck = load_checkpoint(checkpoint_path(model_name))
    loaded = LoadedModel(model_from_checkpoint(ck).eval(), ck, None)
    segmenter = None if segments == "simulator" else SEGMENTERS.make(segments, min_points=10)
    # the simulator's segments as the simulated graph has them (no noise); a depth camera's with its noise
    robot = SimRobot(load_world_config(layout=layout), organized=segmenter is not None,
                     noise=None if segmenter is None else NoiseModel(*SENSOR_NOISE), seed=0)
    verifier = SymbolicVerifier()
    out = {"trials": 0, "first_accepted": 0, "accepted": 0, "sure_and_wrong": 0, "ungrounded": 0, "first_p": []}
    for i in range(trials):
        seed = 7000 + i
        robot.rng = np.random.default_rng(seed)
        info = robot.reset_task("transport", 3, seed)
        truth = robot.observation().objects
        if segmenter is None:              # what the camera sees of them (labelled_cloud drops the unseen)
            objects = [o for o in truth if len(o.points)]
            names = {o.id: o.id for o in objects}
        else:
            tracker, (pos, quat) = SegmentTracker(0.1), robot.camera_pose()
            for _ in range(2):
                frame = SensorFrame(robot.camera_cloud(), camera_pose=(*pos, *quat))
                objects = tracker.assign(perceive(segmenter, frame)[1])
            boxes = {o.id: o.box.center for o in truth if o.box is not None}   # unseen: not groundable
            names = ground([(n, label, boxes[n]) for n, label in zip(info.object_ids, info.labels) if n in boxes],
                           objects)
        index = {o.id: k for k, o in enumerate(objects)}
        out["trials"] += 1
        try:
            goal = [(p, index[names[s]], None if o is None else index[names[o]]) for p, s, o in info.goal]
        except KeyError:
            out["ungrounded"] += 1
            continue
        scene = SegmentedScene(objects, "base_link", 0, f"camera:{segments}")
        facts, refused = SceneFacts.from_scene(scene), []
        named = [(p, objects[s].id, None if o is None else objects[o].id) for p, s, o in goal]
        for attempt in range(3):
            with torch.no_grad():
                plan = plan_task(loaded, scene, goal, None, PlanningSettings(seed=0), refused=refused)
            calls = [SkillCall(sk, (objects[t].id,), tuple(a)) for (sk, t), a in zip(plan.skeleton, plan.parameters)]
            ok = verifier.verify_plan(PlanQuery(f"t{seed}", calls, facts, named)).success
            if attempt == 0:
                out["first_p"].append(round(float(plan.goal_probability), 3))
                out["first_accepted"] += ok
            if not ok and plan.goal_probability >= 0.05:
                out["sure_and_wrong"] += 1
            if ok:
                out["accepted"] += 1
                break
            refused.append(plan)
    say(f"[perceived-model] plans, {model_name} on {layout} {segments} segments: first accepted {out['first_accepted']}/"
        f"{out['trials']}, within 3 {out['accepted']}/{out['trials']}, sure and wrong {out['sure_and_wrong']}")
    return out


def markdown(result: dict, command: str) -> str:
    sets = list(result["sets"])
    head = "| model | " + " | ".join(f"{s} ({result['sets'][s]['transitions']})" for s in sets) + " |"
    lines = ["# Γ on perceived segments and on the simulator's", "", f"`{command}`", "",
             f"{result['machine']}. Held-out transitions per set in brackets (usable of "
             f"{result['transitions_per_set']} generated). Each cell: relation detection micro F1 / next-step "
             "accuracy, the simulator's relations as labels. Perceived: organised 640x480 depth with noise (depth "
             "4 mm, points 2 mm, 10 % missing), segmented by the backend named; simulator: the segmenting camera's "
             "own segments.", "", head, "|---|" + "---|" * len(sets)]
    for m, r in result["models"].items():
        cells = [f"{r['scores'][s]['detection_f1']:.3f} / {r['scores'][s]['next_step_accuracy']:.3f}" for s in sets]
        lines.append(f"| `{m}` (`{r['version']}`) | " + " | ".join(cells) + " |")
    if result.get("plans"):
        lines += ["", f"Planning fresh transport-3 scenes of the layout named (seeds 7000-{7000 + result['plan_trials'] - 1}), "
                  "every plan checked by Guardian (symbolic), up to three as the executor tries; *sure and wrong*: "
                  "refused plans the model gave p(goal) >= 0.05.", "",
                  "| layout:model | segments | first plan accepted | accepted within 3 | sure and wrong | goal not groundable |",
                  "|---|---|---|---|---|---|"]
        for m, by in result["plans"].items():
            for seg, r in by.items():
                lines.append(f"| `{m}` | {seg} | {r['first_accepted']}/{r['trials']} | {r['accepted']}/{r['trials']} | "
                             f"{r['sure_and_wrong']} | {r['ungrounded']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["skill_effect_pretrained.pt", "skill_effect_real_scale.pt"],
                   help="checkpoints: shipped names or paths (models fine-tuned on perceived segments: "
                        "benchmarks/README.md gives the commands)")
    p.add_argument("--work", default="/tmp/f2p-perceived-model", help="where the held-out sets are (generated if not)")
    p.add_argument("--transitions", type=int, default=500, help="generated per held-out set")
    p.add_argument("--plan-models", nargs="*", default=["paper:skill_effect_pretrained.pt",
                                                        "paper:skill_effect_transport3_learned.pt",
                                                        "real_scale:skill_effect_real_scale.pt"],
                   help="layout:model pairs planned with on that layout's transport-3 scenes")
    p.add_argument("--plans", type=int, default=50, help="scenes planned per model and kind of segments")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="perceived_model")
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    result = run(a.models, Path(a.work), a.transitions)
    result["plans"] = {pair: {seg: plan_trials(pair.partition(":")[2], pair.partition(":")[0], seg, a.plans)
                              for seg in ("simulator", "geometric")} for pair in a.plan_models}
    result.update(transitions_per_set=a.transitions, plan_trials=a.plans, seconds=round(time.perf_counter() - t0, 1),
                  machine=f"{platform.machine()}, {os.cpu_count()} cores, {a.threads} torch thread(s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    command = "python benchmarks/perceived_model.py " + " ".join(sys.argv[1:])
    (RESULTS / f"{a.name}.md").write_text(markdown(result, command.strip()))
    print(markdown(result, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
