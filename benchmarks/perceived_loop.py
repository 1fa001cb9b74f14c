"""The loop on perceived segments, through the graph (issue 45 part 5): how often the learned
model gets a task done when the robot sees the world through its own perception, and why it
fails when it does not.

The sim graph runs in this process over DDS (loopback), each node with the installed
``config/sim.yaml`` parameters: sim_robot, perception, relation_detector, guardian (symbolic),
planner, failure_recorder, task_executor. Per setting:

simulator   the simulated camera's per-point instances (``labelled_cloud``): the figure the
            shipped demo shows;
segmenting_depth
            the depth camera below, with the simulator's per-point instances: perfect
            segments on the robot's kind of cloud (what is left to fail is Γ and execution
            on that cloud, not segmentation or tracking);
geometric   a plain 640x480 organised depth cloud with a structured-light sensor's noise
            (``--sensor-noise``: depth and point noise, missing returns), segmented by the
            ``geometric`` backend and tracked frame to frame, as on a robot;
convex      the same cloud, the ``convex`` backend.

Every trial resets a fresh scene (``--seed-base + i``; never a training seed) and perception's
tracking (``reset_tracking``: the world was replaced, not moved), states the goal
in the ids perception reports (the simulator's true boxes name the segments:
``f2p_perception.tracking.ground``, what a client on a robot does by pointing) and sends
``RunTask``. Success: the goal observed at the end and true in the simulator. A failed trial is
put down to one cause, in this order:

tracking       the ids the goal or the plan named were gone from the next observation (the
               goal refused as naming unknown objects, or a step STEP_UNCHECKABLE);
segmentation   a goal object had no segment of its own at the start, or the end's observation
               disagreed with the simulator about the goal (it held unseen, or was seen where
               it did not hold);
guardian       every plan was refused (Guardian or the executor's own check);
execution      the skill failed or slipped past the verifier's retries;
gamma          the model planned nothing, or its predicted effects did not happen (failure
               events) and the goal was not reached.

``python benchmarks/perceived_loop.py`` writes ``results/perceived_loop.{json,md}`` (``--name``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = ("simulator", "segmenting_depth", "geometric", "convex")
CAUSES = ("tracking", "segmentation", "guardian", "execution", "gamma")
#: The graph in activation order: node name -> (module, class).
NODES = {"sim_robot": ("f2p_sim.sim_robot_node", "SimRobotNode"),
         "perception": ("f2p_perception.perception_node", "PerceptionNode"),
         "relation_detector": ("f2p_relations.relation_detector_node", "RelationDetectorNode"),
         "guardian": ("f2p_guardian.guardian_node", "GuardianNode"),
         "planner": ("f2p_planner.planner_node", "PlannerNode"),
         "failure_recorder": ("f2p_executor.failure_recorder_node", "FailureRecorderNode"),
         "task_executor": ("f2p_executor.task_executor_node", "TaskExecutorNode")}
TASK_TEXT = {"transport": "carry the container with its items to the other table",
             "organize": "put each item into the container of its kind"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - h), min(1.0, c + h)


def setting_params(setting: str, a) -> dict[str, dict]:
    """Each node's ``ros__parameters``: the installed sim.yaml with the setting's camera and backend."""
    import yaml

    from f2p_bringup.graph import params_file
    sim = yaml.safe_load(params_file("sim").read_text())
    params = {name: dict(sim[name]["ros__parameters"]) for name in NODES}
    params["sim_robot"].update(task=a.task, objects=a.objects, seed=a.seed_base, image_rate_hz=0.0,
                               execution_noise=a.execution_noise)
    if setting != "simulator":            # a robot's depth camera: every pixel, with its noise
        params["sim_robot"].update(organized=True, rate_hz=a.camera_hz, sensor_noise=list(a.sensor_noise))
        params["perception"]["backend"] = "labelled_cloud" if setting == "segmenting_depth" else setting
    params["planner"].update(checkpoint=a.checkpoint, torch_threads=1)
    return params


def cause_of(res, grounded: bool, truth_goal: bool) -> str:
    """The module docstring's attribution of a failed trial."""
    from f2p_executor.task_runner import ErrorCode
    code = ErrorCode(res.error_code)
    if code in (ErrorCode.STEP_UNCHECKABLE, ErrorCode.NO_OBSERVATION, ErrorCode.INVALID_GOAL):
        return "tracking"          # the ids the goal or the plan named were gone from the next observation
    if not grounded or truth_goal != bool(res.goal_observed):
        return "segmentation"
    if code == ErrorCode.PLAN_REFUSED:
        return "guardian"
    if code in (ErrorCode.SKILL_FAILED, ErrorCode.STEP_SLIPPED):
        return "execution"
    return "gamma"


def truth_holds(robot, goal) -> bool:
    """Every goal literal (the simulator's names) in the simulator's current relations."""
    from f2p_common.interfaces import ground_literal
    from f2p_executor.supervision import goal_status
    state = robot.relations()
    index = {n: i for i, n in enumerate(state.object_ids)}
    lits = [ground_literal(g.predicate, g.subject_id, g.object_id, index) for g in goal]
    return goal_status(lits, state)[0]


def run_setting(setting: str, a, spool: Path, say=print) -> dict:
    import importlib

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from f2p_demo.graph_client import DemoError, Probe
    from f2p_interfaces.action import RunTask

    params = setting_params(setting, a)
    params["failure_recorder"]["spool_dir"] = str(spool)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=8, context=context)
    nodes = {}
    for name, (module, cls) in NODES.items():
        overrides = [Parameter(k, value=v) for k, v in params[name].items()]
        nodes[name] = getattr(importlib.import_module(module), cls)(context=context, parameter_overrides=overrides)
        executor.add_node(nodes[name])
    threading.Thread(target=executor.spin, daemon=True).start()
    out = {"trials": 0, "success": 0, "causes": {c: 0 for c in CAUSES}, "failure_events": 0, "steps": 0,
           "seconds": 0.0, "records": []}
    probe = None
    try:
        for name, n in nodes.items():
            for step in (n.trigger_configure, n.trigger_activate):
                if step().name != "SUCCESS":
                    raise RuntimeError(f"{name} did not come up (its log says why)")
        probe = Probe(lambda *_: None)
        if not (probe.reset.wait_for_service(timeout_sec=30) and probe.run.wait_for_server(timeout_sec=30)):
            raise RuntimeError("reset_scene or run_task is not there")
        robot = nodes["sim_robot"].robot
        t0 = time.perf_counter()
        for i in range(a.trials):
            seed = a.seed_base + i
            t_trial = time.perf_counter()
            resp = probe.new_scene(a.task, a.objects, seed, 60)
            record = {"seed": seed, "grounded": True}
            try:
                goal = list(resp.goal) if setting in ("simulator", "segmenting_depth") else probe.ground_goal(resp)
            except DemoError as exc:
                goal, record["grounded"], record["message"] = None, False, str(exc)[:200]
            res = None
            if goal is not None:
                handle = probe.call(probe.run.send_goal_async(RunTask.Goal(
                    task_description=TASK_TEXT[a.task], goal=goal, observe_after=resp.stamp,
                    max_replans=a.replans)), 60)
                res = probe.call(handle.get_result_async(), 600).result
            truth = truth_holds(robot, resp.goal)
            ok = bool(res is not None and res.goal_observed and truth)
            record.update(success=ok, truth_goal=truth, seconds=round(time.perf_counter() - t_trial, 1))
            if res is not None:
                record.update(goal_observed=bool(res.goal_observed), error_code=int(res.error_code),
                              message=res.message[:600], steps=len(res.executed_steps),
                              failure_events=len(res.failure_event_ids))
                out["failure_events"] += len(res.failure_event_ids)
                out["steps"] += len(res.executed_steps)
            if not ok:
                record["cause"] = cause_of(res, record["grounded"], truth) if res is not None else "segmentation"
                out["causes"][record["cause"]] += 1
            out["trials"] += 1
            out["success"] += ok
            out["records"].append(record)
            say(f"[perceived-loop] {setting} {i + 1}/{a.trials} seed {seed}: "
                f"{'ok  ' if ok else 'FAIL'} {record.get('cause', '')} {record.get('message', '')[:110]}")
        out["seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        if probe is not None:
            probe.close()
        executor.shutdown(timeout_sec=5)
        for n in nodes.values():
            n.destroy_node()
        rclpy.try_shutdown(context=context)
    out["success_rate"] = out["success"] / max(out["trials"], 1)
    out["ci95"] = [round(v, 3) for v in wilson(out["success"], out["trials"])]
    return out


def write(report: dict, results: Path, name: str) -> str:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# The loop through the graph on perceived segments: {report['task']}", "",
             f"`{report['command']}`", "",
             f"{report['machine']}. Model: `{report['checkpoint']}`. Camera: {report['camera']}. "
             f"Success: the goal observed at the end and true in the simulator.", "",
             "| setting | success | 95 % CI | " + " | ".join(CAUSES) + " | failure events | steps | time/trial |",
             "|---|---|---|" + "---|" * len(CAUSES) + "---|---|---|"]
    for s, r in report["settings"].items():
        lo, hi = r["ci95"]
        lines.append(f"| {s} | {r['success']}/{r['trials']} | {lo:.2f}-{hi:.2f} | "
                     + " | ".join(str(r["causes"][c]) for c in CAUSES)
                     + f" | {r['failure_events']} | {r['steps']} | {r['seconds'] / max(r['trials'], 1):.1f} s |")
    lines += ["", "Causes (benchmarks/perceived_loop.py): tracking — the ids the goal or the plan named gone from "
              "the next observation; segmentation — a goal object without a segment of its own at the start, or the "
              "final observation wrong about the goal; guardian — every plan refused; execution — the skill failed; "
              "gamma — the model's predicted effects did not happen or it planned nothing."]
    text = "\n".join(lines) + "\n"
    (results / f"{name}.md").write_text(text)
    return text


def main(argv=None) -> int:
    import tempfile

    from f2p_datasets.perceived import SENSOR_NOISE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="transport", choices=tuple(TASK_TEXT))
    p.add_argument("--objects", type=int, default=3, choices=(3, 5, 7))
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--seed-base", type=int, default=91000, help="fresh scenes: never a training or evaluation seed")
    p.add_argument("--checkpoint", default="skill_effect_transport3_learned.pt",
                   help="the planner's model (a shipped name or a path)")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--sensor-noise", type=float, nargs=3, default=SENSOR_NOISE,
                   metavar=("DEPTH_STD", "POINT_STD", "DROPOUT"), help="the depth camera's noise (perceived settings)")
    p.add_argument("--camera-hz", type=float, default=2.0, help="organised 640x480 clouds per second")
    p.add_argument("--execution-noise", type=float, default=0.0)
    p.add_argument("--replans", type=int, default=2)
    p.add_argument("--name", default="perceived_loop", help="report name: results/<name>.{json,md}")
    p.add_argument("--results", default=str(RESULTS))
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    report = {"benchmark": "perceived_loop", "command": "python " + " ".join(sys.argv),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, 1 torch thread, nothing else running",
              "task": f"{a.task}-{a.objects}", "checkpoint": a.checkpoint, "replans": a.replans,
              "camera": f"simulator: the labelled foveated cloud; perceived: organised 640x480 at {a.camera_hz:g} Hz, "
                        f"noise depth {a.sensor_noise[0]} m, point {a.sensor_noise[1]} m, dropout {a.sensor_noise[2]}",
              "execution_noise": a.execution_noise, "settings": {}}
    for setting in a.settings:
        with tempfile.TemporaryDirectory() as tmp:
            report["settings"][setting] = run_setting(setting, a, Path(tmp) / "spool")
        print(write(report, Path(a.results), a.name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
