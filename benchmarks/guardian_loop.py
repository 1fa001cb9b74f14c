"""Guardian in the loop (issue 32; paper 002 §IV-D): task success on the simulated robot graph
with execution noise, with and without verification.

The graph runs in this process over DDS (loopback): sim_robot (``execution_noise``: each
pick_place / push slips with that probability — a grasp that never closes, lands beside the
object or loses it on the way; a push that grazes past), perception, relation_detector,
planner, task_executor and, in the guarded setting, guardian (symbolic backend). Every trial
resets a fresh transport scene (seeds ``--seed-base + i``) and sends ``RunTask`` with the
scene's goal. Settings:

open_loop   no verification, no replanning: the plan runs once (the paper's unverified pipeline);
relations   f2p's own check: observed relations against the plan's predictions after each step,
            a mismatch is a failure event and the task is replanned (``--replans``);
guardian    Guardian verifies the plan and every step: a slip is replanned without a failure
            event (``max_step_retries``), anything else is a failure event and a replan.
Success = the goal relations observed at the end. Also counted: failure events recorded (with
the learned model, every one of them blames the model for a slip of the controller), steps run.
The planner serves ``--checkpoint`` (default: the transport model learned from one failure,
which plans this task right: what is left to go wrong is the execution).

``--controller afil`` runs the skills with AFIL's learned controller instead of the scripted
primitives (issue 33: the stack's task success with each controller; ``make bench-afil``).

``python benchmarks/guardian_loop.py`` writes results/guardian_loop.{json,md} (``--name``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = ("open_loop", "relations", "guardian")


def _wait(future, timeout: float):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f"no answer within {timeout} s")
    return future.result()


def run_setting(setting: str, a, spool: Path) -> dict:
    import rclpy
    from f2p_ros.actions import ActionClient
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from f2p_executor.failure_recorder_node import FailureRecorderNode
    from f2p_executor.task_executor_node import TaskExecutorNode
    from f2p_failure.events import list_events
    from f2p_guardian.guardian_node import GuardianNode
    from f2p_interfaces.action import RunTask
    from f2p_interfaces.msg import Relation
    from f2p_interfaces.srv import ResetScene
    from f2p_perception.perception_node import PerceptionNode
    from f2p_planner.planner_node import PlannerNode
    from f2p_relations.relation_detector_node import RelationDetectorNode
    from f2p_sim.sim_robot_node import SimRobotNode

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=10, context=context)
    p = lambda k, v: Parameter(k, value=v)   # noqa: E731
    guarded = setting == "guardian"
    nodes = [SimRobotNode(context=context, parameter_overrides=[p("rate_hz", 10.0), p("image_rate_hz", 0.0),
                                                                 p("execution_noise", a.noise), p("seed", a.seed_base),
                                                                 p("controller", a.controller),
                                                                 p("afil_checkpoint", a.afil_checkpoint)]),
             PerceptionNode(context=context), RelationDetectorNode(context=context),
             PlannerNode(context=context, parameter_overrides=[p("skills", ["pick_place"]), p("torch_threads", 1),
                                                               p("checkpoint", a.checkpoint)]),
             FailureRecorderNode(context=context, parameter_overrides=[p("spool_dir", str(spool))]),
             TaskExecutorNode(context=context, parameter_overrides=[
                 p("verifier", "verify_plan" if guarded else ""),
                 p("execution_verifier", "verify_execution" if guarded else ""), p("max_step_retries", a.retries)])]
    if guarded:
        nodes.insert(3, GuardianNode(context=context))
    for n in nodes:
        executor.add_node(n)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    out = {"trials": 0, "success": 0, "failure_events": 0, "retries": 0, "steps": 0, "aborted": 0, "seconds": 0.0,
           "messages": {}}
    try:
        for n in nodes:
            assert n.trigger_configure().name == "SUCCESS" and n.trigger_activate().name == "SUCCESS", n.get_name()
        probe = rclpy.create_node("guardian_loop_probe", context=context)
        executor.add_node(probe)
        reset = probe.create_client(ResetScene, "/reset_scene")
        run = ActionClient(probe, RunTask, "/run_task")
        assert reset.wait_for_service(timeout_sec=30) and run.wait_for_server(timeout_sec=30)
        t0 = time.perf_counter()
        for i in range(a.trials):
            resp = _wait(reset.call_async(ResetScene.Request(task="transport", n_objects=a.objects,
                                                             seed=a.seed_base + i)), 60)
            goal = [Relation(predicate=g.predicate, subject_id=g.subject_id, object_id=g.object_id) for g in resp.goal]
            handle = _wait(run.send_goal_async(RunTask.Goal(
                task_description="carry the container with its items to table_b", goal=goal, observe_after=resp.stamp,
                max_replans=0 if setting == "open_loop" else a.replans)), 60)
            res = _wait(handle.get_result_async(), 300).result
            out["trials"] += 1
            out["success"] += bool(res.goal_observed)
            out["failure_events"] += len(res.failure_event_ids)
            out["retries"] += int(res.retries)
            out["steps"] += len(res.executed_steps)
            reason = res.message.split(":")[0][:60]
            out["messages"][reason] = out["messages"].get(reason, 0) + 1
            print(f"[guardian-loop] {setting} {i + 1}/{a.trials}: {'ok ' if res.goal_observed else 'FAIL'} "
                  f"{res.message[:100]}", flush=True)
        out["seconds"] = round(time.perf_counter() - t0, 1)
        out["events_in_spool"] = len(list_events(spool))
    finally:
        executor.shutdown(timeout_sec=5)
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown(context=context)
    out["success_rate"] = out["success"] / max(out["trials"], 1)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--noise", type=float, default=0.3, help="the robot's execution noise (slip probability)")
    p.add_argument("--objects", type=int, default=3, choices=(3, 5, 7))
    p.add_argument("--replans", type=int, default=2)
    p.add_argument("--retries", type=int, default=2, help="Guardian's max_step_retries")
    p.add_argument("--seed-base", type=int, default=5000)
    p.add_argument("--checkpoint", default="skill_effect_transport3_learned.pt")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--controller", default="scripted", choices=("scripted", "afil"),
                   help="who executes the skills: the scripted primitives (+ execution noise) or AFIL's learned controller")
    p.add_argument("--afil-checkpoint", default="", help="AFIL controller checkpoint ('' = the shipped one)")
    p.add_argument("--name", default="guardian_loop", help="report name: results/<name>.{json,md}")
    p.add_argument("--results", default=str(RESULTS), help="folder for <name>.{json,md}")
    a = p.parse_args(argv)
    report = {"benchmark": "guardian_loop", "command": "python " + " ".join(sys.argv),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, nothing else running",
              "task": f"transport-{a.objects}", "execution_noise": a.noise, "replans": a.replans,
              "max_step_retries": a.retries, "checkpoint": a.checkpoint, "controller": a.controller, "settings": {}}
    for setting in a.settings:
        with tempfile.TemporaryDirectory() as tmp:
            report["settings"][setting] = run_setting(setting, a, Path(tmp) / "spool")
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    name = a.name
    (results / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# The loop on transport-{a.objects}: {a.controller} controller, execution noise {a.noise}, "
             f"{a.trials} trials per setting",
             "", report["machine"], "", "| setting | success | failure events | retries | steps | time |",
             "|---|---|---|---|---|---|"]
    for s, r in report["settings"].items():
        lines.append(f"| {s} | {r['success_rate']:.2f} ({r['success']}/{r['trials']}) | {r['failure_events']} | "
                     f"{r['retries']} | {r['steps']} | {r['seconds']:.0f} s |")
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
