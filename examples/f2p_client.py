#!/usr/bin/env python3
"""Calling f2p from your own stack: plan a task, run it, (in simulation) reset the scene.

Uses nothing of f2p but its published interfaces (``f2p_interfaces``) and plain rclpy — copy
it into your own package. With the graph running (``f2p-bringup sim`` or ``ros2 launch
f2p_bringup sim.launch.py``):

    python examples/f2p_client.py reset --task transport --objects 3 --seed 1000
    python examples/f2p_client.py plan --goal inside:cuboid_3:bin_2
    python examples/f2p_client.py run  --goal inside:cuboid_3:bin_2 --max-replans 1
    python examples/f2p_client.py run  --reset transport:3:1000      # reset, then run its goal

A goal is ``predicate:subject[:object]`` with object ids as perception names them
(``<class>_<instance>``); ``--skeleton pick_place:cuboid_3`` fixes the skills to plan for.
Exit status: 0 when the plan was found / the task succeeded, 1 otherwise, 2 when f2p did not
answer (is the graph running, in this ROS_DOMAIN_ID?).
"""
import argparse
import sys

import rclpy
from rclpy.action import ActionClient

from f2p_interfaces.action import RunTask
from f2p_interfaces.msg import Relation, SkillCall, TaskProgress
from f2p_interfaces.srv import PlanTask, ResetScene

TIMEOUT_S = 30.0


def parse_relation(text: str) -> Relation:
    """``inside:cuboid_3:bin_2`` -> Relation (a unary relation has no object)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: want predicate:subject[:object]")
    return Relation(predicate=parts[0], subject_id=parts[1], object_id=parts[2] if len(parts) == 3 else "",
                    probability=1.0)


def parse_skill(text: str) -> SkillCall:
    """``pick_place:cuboid_3`` -> SkillCall without parameters (the planner chooses them)."""
    skill, _, target = text.partition(":")
    return SkillCall(skill=skill, target_ids=[target] if target else [])


def show(relation: Relation) -> str:
    return ":".join(p for p in (relation.predicate, relation.subject_id, relation.object_id) if p)


#: TaskProgress's stage constants by value, for printing ("verify_plan").
STAGE_NAMES = {v: k[len("STAGE_"):].lower() for k, v in vars(TaskProgress).items() if k.startswith("STAGE_")}

class F2pClient:
    """Synchronous calls to f2p's services and actions (spins its own node while waiting)."""

    def __init__(self, namespace: str = ""):
        self.node = rclpy.create_node("f2p_example_client", namespace=namespace)
        self.reset = self.node.create_client(ResetScene, "reset_scene")
        self.plan = self.node.create_client(PlanTask, "plan_task")
        self.run = ActionClient(self.node, RunTask, "run_task")

    def _wait(self, future, timeout: float = TIMEOUT_S):
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f"no answer in {timeout:g} s")
        return future.result()

    def _ready(self, client, name: str) -> None:
        ready = client.wait_for_server if isinstance(client, ActionClient) else client.wait_for_service
        if not ready(timeout_sec=TIMEOUT_S):
            raise TimeoutError(f"{name} is not available")

    def reset_scene(self, task: str, objects: int, seed: int) -> ResetScene.Response:
        self._ready(self.reset, "reset_scene (the simulated robot)")
        return self._wait(self.reset.call_async(ResetScene.Request(task=task, n_objects=objects, seed=seed)))

    def plan_task(self, goal, skeleton=()) -> PlanTask.Response:
        """An empty scene: the planner plans on perception's latest."""
        self._ready(self.plan, "plan_task (the planner)")
        return self._wait(self.plan.call_async(PlanTask.Request(goal=list(goal), skeleton=list(skeleton))))

    def run_task(self, goal, skeleton=(), max_replans: int = 0, description: str = "") -> RunTask.Result:
        self._ready(self.run, "run_task (the task executor)")

        def feedback(msg):
            f = msg.feedback
            step = f" step {f.progress.step_index + 1}/{f.progress.num_steps}" if f.progress.num_steps else ""
            print(f"  [{STAGE_NAMES.get(f.progress.stage, '?')}]{step} {f.progress.status}", flush=True)
        handle = self._wait(self.run.send_goal_async(RunTask.Goal(task_description=description, goal=list(goal),
                                                                  skeleton=list(skeleton), max_replans=max_replans),
                                                     feedback_callback=feedback))
        if not handle.accepted:
            raise RuntimeError("run_task refused the goal: a task is already running, or the executor is not active")
        return self._wait(handle.get_result_async(), timeout=600.0).result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--namespace", default="", help="the graph's namespace")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reset", help="simulation: load a task scene; prints its objects and goal")
    r.add_argument("--task", default="transport")
    r.add_argument("--objects", type=int, default=3)
    r.add_argument("--seed", type=int, default=1000)
    for name in ("plan", "run"):
        c = sub.add_parser(name, help=f"{name} a task")
        c.add_argument("--goal", type=parse_relation, nargs="*", default=[])
        c.add_argument("--skeleton", type=parse_skill, nargs="*", default=[])
        c.add_argument("--reset", default="", help="simulation: task:objects:seed to load first; its goal is used")
    sub.choices["run"].add_argument("--max-replans", type=int, default=0)
    a = p.parse_args()

    rclpy.init()
    client = F2pClient(a.namespace)
    try:
        goal = list(getattr(a, "goal", []))
        if a.command == "reset" or getattr(a, "reset", ""):
            task, objects, seed = (a.task, a.objects, a.seed) if a.command == "reset" else a.reset.split(":")
            resp = client.reset_scene(task, int(objects), int(seed))
            print(f"reset: {resp.message}\n  objects: {' '.join(resp.object_ids)}\n"
                  f"  goal: {' '.join(show(g) for g in resp.goal)}")
            if not resp.success:
                return 1
            goal = goal or list(resp.goal)
            if a.command == "reset":
                return 0
        if a.command == "plan":
            resp = client.plan_task(goal, a.skeleton)
            if not resp.success:
                print(f"no plan: {resp.message}")
                return 1
            for k, step in enumerate(resp.plan.steps):
                print(f"  {k + 1}. {step.skill.skill} {' '.join(step.skill.target_ids)} "
                      f"({', '.join(f'{v:.3f}' for v in step.skill.parameters)})")
            print(f"p(goal) = {resp.plan.success_probability:.2f} with model {resp.plan.model_version}")
            return 0
        result = client.run_task(goal, a.skeleton, a.max_replans, description=a.reset.split(":")[0])
        print(f"{'success' if result.success else 'failure'}: {result.message}\n"
              f"  goal observed: {result.goal_observed}, predictions met: {result.predictions_met}, "
              f"failure events: {' '.join(result.failure_event_ids) or 'none'}")
        return 0 if result.success else 1
    except TimeoutError as exc:
        print(f"f2p did not answer: {exc}", file=sys.stderr)
        return 2
    finally:
        client.node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
