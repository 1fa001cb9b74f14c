"""``task_executor`` lifecycle node: runs a task end to end — observe, plan, verify, execute each
step, observe again, detect failures (paper 000 §3-4), replan.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
action ``run_task``        f2p_interfaces/RunTask           goal relations (+ skeleton,
                                                            max_replans) -> executed steps,
                                                            failure event ids, final relations;
                                                            feedback per stage; cancel anytime
sub ``segmented_scene``    f2p_interfaces/SegmentedScene    perception (transient local)
sub ``relation_state``     f2p_interfaces/RelationState     the relation detector (its stamp
                                                            pairs it with its scene)
client ``plan_task``       f2p_interfaces/PlanTask          the planner
client ``execute_skill``   f2p_interfaces/ExecuteSkill      the robot's skill server (sim_robot)
client ``verifier``        f2p_interfaces/VerifyPlan        when set: a plan verifier (Guardian)
client ``execution_verifier``  f2p_interfaces/VerifyExecution  when set: a step verifier (Guardian)
pub ``failure_events``     f2p_interfaces/FailureEvent      every failure event, as recorded
pub ``plan``               f2p_interfaces/Plan              every plan adopted (latched)
pub ``task_progress``      f2p_interfaces/TaskProgress      every stage (latched): goal, plan, step
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  per task: OK / WARN with the outcome
=========================  ===============================  ====================================

A task: **observe** (a scene and its relations received after the request), **plan**, **verify**
(``verifier`` service when set; otherwise the executor's own symbolic check,
``f2p_executor.supervision.check_plan``), then per step **execute** and **verify_step**: the
first observation after the skill ended (received after its result, stamped no earlier) is
compared with the relations the plan predicted (§4). A mismatch is a failure event F = (O_{k-1},
R_{k-1}, φ_k(a_k), R_k), written durably to ``spool_dir`` (``.f2pevent``, fsync + rename: the
``failure_recorder``'s queue, which ships it to the learner) and published; the executor then
**replans** from what it observes, up to ``max_replans`` times. The result says whether the goal
was observed and whether every prediction held, so "done, but the model was wrong" differs
from "not done". With ``execution_verifier`` set (Guardian's ``verify_execution``), every step is
also verified from the scenes before and after it, and its category routes the outcome
(``f2p_executor.supervision.route_step``, paper 002 §IV-D): an execution slip (the gripper never
closed, missed or lost the object, nothing happened) is not the model's fault — no failure event,
the step is replanned from what is observed, at most ``max_step_retries`` times per task —; any
other failure, or a relation mismatch, is a failure event as above. A plan the ``verifier``
(or the executor's own check) refuses is not executed: the planner is asked again for the same
scene with the plans refused so far (PlanTask's ``refused_plans``: it proposes none of them, nor
one near them; paper 002 §IV-D replans on Guardian's verdict), at most ``max_plan_refusals``
times per task; then the task ends with the verifier's category and reasoning. Refused plans record no failure event:
nothing was executed, so nothing was observed to learn from. One task runs at a time: a goal sent meanwhile is rejected. A camera that stops
ends the task after ``observe_timeout_s`` with that reason; a skill server that does not answer,
after ``step_timeout_s``.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from f2p_common.interfaces import Plan, RelationState, SegmentedScene, SkillCall
from f2p_executor.supervision import FAILURE, RETRY, check_plan, goal_status, route_step, step_mismatches
from f2p_failure.events import FailureEvent, FailureEventError
from f2p_failure.queue import EventQueue
from f2p_interfaces.action import ExecuteSkill, RunTask
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import Plan as PlanMsg
from f2p_interfaces.msg import GuardianVerdict, PlanStep, TaskProgress
from f2p_interfaces.msg import RelationState as RelationStateMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_interfaces.srv import PlanTask, VerifyExecution, VerifyPlan
from f2p_ros import parameters as P
from f2p_ros.conversions import (ConversionError, PointCloudError, box_to_msg, failure_event_to_msg, literal_from_msg,
                                 plan_from_msg, plan_to_msg, relations_from_msg, relations_to_msg, scene_from_msg,
                                 scene_to_msg, skill_call_to_msg, stamp_to_ns)
from f2p_ros.nodes import NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node, wait_for


def default_spool_dir() -> str:
    """``$ROS_HOME/f2p/failure_events`` (ROS_HOME defaults to ~/.ros)."""
    return str(Path(os.environ.get("ROS_HOME", Path.home() / ".ros")) / "f2p" / "failure_events")


PARAMS = [
    P.Param("spool_dir", "", "folder failure events are written to durably ('' = $ROS_HOME/f2p/failure_events)"),
    P.Param("robot_id", "sim", "robot id recorded in every failure event"),
    P.Param("verifier", "", "VerifyPlan service that checks plans before acting ('' = the executor's own check)"),
    P.Param("execution_verifier", "", "VerifyExecution service that checks each step after acting ('' = the "
                                      "relation check alone)"),
    P.Param("max_step_retries", 2, "steps run again per task after the execution verifier saw a slip",
            P.positive_or_zero),
    P.Param("max_plan_refusals", 2, "plans the verifier may refuse per task; after each the planner searches "
            "again, away from the refused ones", P.positive_or_zero),
    P.Param("min_goal_probability", 0.0, "own check: refuse plans whose predicted p(goal) is lower (0 = never)",
            lambda v: None if 0.0 <= v <= 1.0 else "must be in [0, 1]"),
    P.Param("reobserve_frames", 3, "after a step, further frames tried when one does not show the plan's objects "
            "(an object missed or split by segmentation)", P.positive_or_zero),
    P.Param("observe_timeout_s", 10.0, "longest wait for an observation (s)", lambda v: None if v > 0 else "must be > 0"),
    P.Param("step_timeout_s", 120.0, "longest wait for a skill or a service (s)",
            lambda v: None if v > 0 else "must be > 0"),
]


class TaskError(Exception):
    """Ends a task early with this message (a stage failed, a timeout, a cancel)."""


class TaskExecutorNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("task_executor", **kwargs)
        P.declare(self, PARAMS)
        self._active = False
        self._busy = threading.Lock()
        self._seen = threading.Condition()
        self._scenes: dict[int, tuple[SegmentedSceneMsg, float]] = {}   # stamp -> (scene, arrival)
        self._pairs: list[tuple[SegmentedSceneMsg, RelationStateMsg, float]] = []
        self._subs = []
        self._events_pub = self._diag = self._plan_pub = self._progress_pub = None
        self.tasks_run = 0
        calls = ReentrantCallbackGroup()
        self._obs_group = MutuallyExclusiveCallbackGroup()
        self._plan_client = self.create_client(PlanTask, "plan_task", callback_group=calls)
        self._skill_client = ActionClient(self, ExecuteSkill, "execute_skill", callback_group=calls)
        self._verify_client = self._step_client = None
        self._action = ActionServer(self, RunTask, "run_task", self._execute, goal_callback=self._on_goal,
                                    cancel_callback=lambda _goal: CancelResponse.ACCEPT, callback_group=calls)

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.v = P.load(self, PARAMS)
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.spool = Path(self.v["spool_dir"] or default_spool_dir()).expanduser()
        try:
            self.queue = EventQueue(self.spool, ())          # the failure recorder ships from here
        except OSError as exc:
            self.get_logger().error(f"configure failed: cannot create the spool {self.spool}: {exc}")
            return TransitionCallbackReturn.FAILURE
        if self.v["verifier"]:
            self._verify_client = self.create_client(VerifyPlan, self.v["verifier"],
                                                     callback_group=ReentrantCallbackGroup())
        if self.v["execution_verifier"]:
            self._step_client = self.create_client(VerifyExecution, self.v["execution_verifier"],
                                                   callback_group=ReentrantCallbackGroup())
        pub = NO_EVENT_HANDLERS["pub"]
        self._events_pub = self.create_lifecycle_publisher(
            FailureEventMsg, "failure_events", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
            event_callbacks=pub)
        self._diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10, event_callbacks=pub)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._plan_pub = self.create_lifecycle_publisher(PlanMsg, "plan", latched, event_callbacks=pub)
        self._progress_pub = self.create_lifecycle_publisher(TaskProgress, "task_progress", latched, event_callbacks=pub)
        self.get_logger().info(f"configured: failure events spool to {self.spool}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sub = NO_EVENT_HANDLERS["sub"]
        self._subs = [
            self.create_subscription(SegmentedSceneMsg, "segmented_scene", self._on_scene, latched,
                                     callback_group=self._obs_group, event_callbacks=sub),
            self.create_subscription(RelationStateMsg, "relation_state", self._on_relations, latched,
                                     callback_group=self._obs_group, event_callbacks=sub)]
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for pub in (self._events_pub, self._diag, self._plan_pub, self._progress_pub):
            self.destroy_lifecycle_publisher(pub)
        self._events_pub = self._diag = self._plan_pub = self._progress_pub = None
        for client in (self._verify_client, self._step_client):
            if client is not None:
                self.destroy_client(client)
        self._verify_client = self._step_client = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        for endpoint in ("_action", "_skill_client"):
            if getattr(self, endpoint, None) is not None:
                getattr(self, endpoint).destroy()
        super().destroy_node()

    # --- observations ------------------------------------------------------------------
    def _on_scene(self, msg: SegmentedSceneMsg) -> None:
        with self._seen:
            self._scenes[stamp_to_ns(msg.header.stamp)] = (msg, time.monotonic())
            while len(self._scenes) > 8:
                self._scenes.pop(next(iter(self._scenes)))

    def _on_relations(self, msg: RelationStateMsg) -> None:
        with self._seen:
            scene = self._scenes.get(stamp_to_ns(msg.header.stamp))
            if scene is None:             # its scene has not arrived (or was superseded): wait for the next
                return
            self._pairs = (self._pairs + [(scene[0], msg, time.monotonic())])[-4:]
            self._seen.notify_all()

    def _observe(self, goal_handle, received_after: float, stamped_after_ns: int = 0
                 ) -> tuple[SegmentedScene, RelationState, SegmentedSceneMsg, RelationStateMsg]:
        """The first scene and relation state received after ``received_after`` (monotonic s) and
        stamped no earlier than ``stamped_after_ns``."""
        deadline = time.monotonic() + self.v["observe_timeout_s"]
        with self._seen:
            while True:
                for scene_msg, rel_msg, arrived in reversed(self._pairs):
                    if arrived > received_after and stamp_to_ns(rel_msg.header.stamp) >= stamped_after_ns:
                        try:
                            return scene_from_msg(scene_msg), relations_from_msg(rel_msg), scene_msg, rel_msg
                        except (ConversionError, PointCloudError) as exc:
                            raise TaskError(f"an unusable observation: {exc}") from None
                if goal_handle.is_cancel_requested:
                    raise TaskError("cancelled")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TaskError(f"no observation (segmented_scene with its relation_state) for "
                                    f"{self.v['observe_timeout_s']:g} s: is the camera publishing?")
                self._seen.wait(min(left, 0.1))

    def _observe_objects(self, goal_handle, received_after: float, stamped_after_ns: int, ids: list[str], k: int):
        """The first observation after step ``k`` that sees the plan's objects ``ids``, in their
        order (a backend that segments each frame afresh lists them in any order); the next
        ``reobserve_frames`` frames are tried when one misses or splits an object."""
        seen = []
        for _try in range(1 + int(self.v["reobserve_frames"])):
            scene, rel, scene_msg, rel_msg = self._observe(goal_handle, received_after, stamped_after_ns)
            if sorted(scene.object_ids) == sorted(ids):
                if scene.object_ids == list(ids):
                    return scene, rel, scene_msg, rel_msg
                scene, rel = scene.reordered(ids), rel.reordered(ids)
                return scene, rel, scene_to_msg(scene), relations_to_msg(rel)
            seen.append(scene.object_ids)
            received_after = time.monotonic()                # the next frame
        raise TaskError(f"after step {k} the camera sees {seen[-1]}, not {list(ids)} (in {len(seen)} frames): the "
                        "step cannot be checked")

    # --- the task ----------------------------------------------------------------------
    def _on_goal(self, goal) -> GoalResponse:
        # An accepted goal holds _busy until its execution ends: a second one is rejected at once.
        if not self._active or not self._busy.acquire(blocking=False):
            self.get_logger().warning("rejected a run_task goal: " +
                                      ("not active" if not self._active else "a task is already running"))
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _feedback(self, goal_handle, stage: str, k: int = 0, n: int = 0, progress: float = 0.0, status: str = "",
                  plan_id: str = ""):
        """The stage to the RunTask client (feedback) and to everyone (task_progress)."""
        if stage != "done":
            goal_handle.publish_feedback(RunTask.Feedback(stage=stage, step_index=k, num_steps=n,
                                                          progress=float(progress), status=status))
        progress_msg = TaskProgress(goal_id=bytes(goal_handle.goal_id.uuid).hex(), stage=stage, plan_id=plan_id,
                                    step_index=k, num_steps=n, status=status)
        progress_msg.header.stamp = self.get_clock().now().to_msg()
        self._progress_pub.publish(progress_msg)

    def _execute(self, goal_handle) -> RunTask.Result:
        result = RunTask.Result()
        try:
            outcome = self._run(goal_handle, result)
        finally:
            self._busy.release()                 # taken when the goal was accepted
        self.tasks_run += 1
        self._feedback(goal_handle, "done", len(result.executed_steps), len(result.executed_steps), 1.0, result.message)
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif outcome:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self._diag.publish(diagnostics(self, "task", OK if result.success else WARN, result.message,
                                       tasks=self.tasks_run, events=len(result.failure_event_ids)))
        return result

    def _run(self, goal_handle, result: RunTask.Result) -> bool:
        """The task (module docstring); fills ``result``; True when it ran to its end."""
        req = goal_handle.request
        started = time.monotonic()
        stop = lambda: goal_handle.is_cancel_requested  # noqa: E731
        replans_left, attempt, retries_left = int(req.max_replans), 0, int(self.v["max_step_retries"])
        refusals_left, refused = int(self.v["max_plan_refusals"]), []
        try:
            self._feedback(goal_handle, "observe", status="waiting for an observation")
            scene, rel, scene_msg, rel_msg = self._observe(goal_handle, started, stamp_to_ns(req.observe_after))
            while True:
                index = {o: i for i, o in enumerate(scene.object_ids)}
                try:
                    goal = [literal_from_msg(m, index, f"goal[{i}]") for i, m in enumerate(req.goal)]
                except ConversionError as exc:
                    raise TaskError(f"bad goal: {exc}") from None
                self._feedback(goal_handle, "plan" if attempt == 0 else "replan", status=f"attempt {attempt + 1}")
                plan = self._plan(scene_msg, req, stop, refused)
                if not plan.skeleton:
                    break                                   # the goal holds already, as the model sees it
                self._plan_pub.publish(plan_to_msg(plan))
                self._feedback(goal_handle, "verify_plan", n=len(plan.skeleton), plan_id=plan.plan_id)
                problems = self._verify(req, scene_msg, plan, scene, stop)
                if problems:
                    refused.append(plan_to_msg(plan))
                    if refusals_left == 0:
                        raise TaskError(f"plan refused {len(refused)} time(s), the last: {'; '.join(problems)}")
                    refusals_left -= 1
                    self.get_logger().info(f"plan {plan.plan_id} refused ({'; '.join(problems)[:200]}): "
                                           f"searching again, away from the {len(refused)} refused")
                    self._feedback(goal_handle, "replan", status=f"plan refused, searching elsewhere: "
                                                                 f"{'; '.join(problems)[:200]}")
                    continue
                refused = []                        # a new scene from here on: its own refusals
                outcome, before, rel_before, before_msg = "done", scene, rel, scene_msg
                for k, ((name, target), params) in enumerate(zip(plan.skeleton, plan.parameters)):
                    self._feedback(goal_handle, "execute", k, len(plan.skeleton), k / len(plan.skeleton),
                                   f"{name} on {plan.object_ids[target]}", plan.plan_id)
                    skill_result, ended = self._execute_skill(plan, k, before, stop)
                    step = PlanStep(skill=skill_call_to_msg(SkillCall(name, (plan.object_ids[target],), tuple(params))))
                    step.predicted_relations = relations_to_msg(RelationState(
                        plan.object_ids, plan.step_relations[k]["unary"], plan.step_relations[k]["binary"],
                        plan.frame_id, plan.stamp_ns))
                    result.executed_steps.append(step)
                    self._feedback(goal_handle, "verify_step", k, len(plan.skeleton), (k + 0.5) / len(plan.skeleton),
                                   plan_id=plan.plan_id)
                    after, rel_after, after_msg, rel_after_msg = self._observe_objects(
                        goal_handle, ended, stamp_to_ns(skill_result.observed_relations.header.stamp),
                        plan.object_ids, k)
                    mismatches = step_mismatches(plan, k, rel_after)
                    verdict = self._verify_step(req, step, before_msg, after_msg, stop)
                    if verdict is not None:
                        result.step_verdicts.append(verdict)
                    route = route_step(mismatches, None if verdict is None else verdict.category)
                    scene, rel, scene_msg, rel_msg = after, rel_after, after_msg, rel_after_msg
                    if route == RETRY:
                        if retries_left == 0:
                            raise TaskError(f"step {k} ({name}) slipped again ({verdict.category}) after "
                                            f"{self.v['max_step_retries']} retries: {verdict.reasoning[:200]}")
                        retries_left -= 1
                        result.retries += 1
                        self.get_logger().info(f"step {k} ({name}) slipped ({verdict.category}): replanning from "
                                               f"what is observed, no failure event")
                        outcome = "retry"
                        break
                    if route == FAILURE:
                        result.failure_event_ids.append(self._record(plan, k, before, rel_before, after, rel_after,
                                                                     mismatches, req, verdict))
                        outcome = "failure"
                        break
                    before, rel_before, before_msg = after, rel_after, after_msg
                if outcome == "done":
                    break
                if outcome == "failure":
                    if replans_left == 0:
                        break
                    replans_left -= 1
                attempt += 1
        except TaskError as exc:
            result.message = str(exc)
            result.predictions_met = not result.failure_event_ids
            return False
        result.final_relations = rel_msg
        index = {o: i for i, o in enumerate(rel.object_ids)}
        goal = [literal_from_msg(m, index) for m in req.goal]
        result.goal_observed, unmet = goal_status(goal, rel)
        result.predictions_met = not result.failure_event_ids
        result.success = result.goal_observed and result.predictions_met
        result.message = ("done: the goal holds and every step went as predicted" if result.success else
                          f"the goal holds, but {len(result.failure_event_ids)} step(s) did not go as predicted"
                          if result.goal_observed else
                          f"not done: {len(unmet)} goal relation(s) do not hold"
                          + (f" after {len(result.failure_event_ids)} failure event(s)" if result.failure_event_ids else ""))
        return True

    # --- stages ------------------------------------------------------------------------
    def _plan(self, scene_msg: SegmentedSceneMsg, req, stop, refused: list) -> Plan:
        if not self._plan_client.wait_for_service(timeout_sec=min(5.0, self.v["step_timeout_s"])):
            raise TaskError("the planner (plan_task) is not available")
        try:
            resp = wait_for(self._plan_client.call_async(PlanTask.Request(scene=scene_msg, goal=req.goal,
                                                                          skeleton=req.skeleton, refused_plans=refused)),
                            self.v["step_timeout_s"], stop)
        except TimeoutError as exc:
            raise TaskError(f"plan_task: {exc}") from None
        except InterruptedError:
            raise TaskError("cancelled") from None
        if not resp.success:
            raise TaskError(f"planning failed: {resp.message}")
        return plan_from_msg(resp.plan)

    def _verify(self, req, scene_msg, plan: Plan, scene: SegmentedScene, stop) -> list[str]:
        problems = check_plan(plan, scene.labels, self.v["min_goal_probability"])
        if problems or self._verify_client is None:
            return problems
        if not self._verify_client.wait_for_service(timeout_sec=5.0):
            return [f"the verifier {self.v['verifier']} is not available"]
        try:
            resp = wait_for(self._verify_client.call_async(VerifyPlan.Request(
                task_description=req.task_description, scene=scene_msg, plan=plan_to_msg(plan))),
                self.v["step_timeout_s"], stop)
        except (TimeoutError, InterruptedError) as exc:
            return [f"verifier: {exc}"]
        if not resp.success:
            return [f"the verifier cannot verify the plan: {resp.message}"]
        if resp.verdict.verdict == GuardianVerdict.VERDICT_FAILURE:
            return [f"the verifier refuses the plan ({resp.verdict.category}): {resp.verdict.reasoning[:200]}"]
        return []

    def _verify_step(self, req, step: PlanStep, before_msg, after_msg, stop) -> GuardianVerdict | None:
        """The execution verifier's verdict on a step (None without one, or when it cannot answer:
        the relation check then decides alone, and the reason is logged)."""
        if self._step_client is None:
            return None
        if not self._step_client.wait_for_service(timeout_sec=5.0):
            self.get_logger().warning(f"the execution verifier {self.v['execution_verifier']} is not available")
            return None
        try:
            resp = wait_for(self._step_client.call_async(VerifyExecution.Request(
                task_description=req.task_description, step=step, before=before_msg, after=after_msg)),
                self.v["step_timeout_s"], stop)
        except (TimeoutError, InterruptedError) as exc:
            self.get_logger().warning(f"execution verifier: {exc}")
            return None
        if not resp.success:
            self.get_logger().warning(f"execution verifier: {resp.message}")
            return None
        return resp.verdict

    def _execute_skill(self, plan: Plan, k: int, scene: SegmentedScene, stop) -> tuple[ExecuteSkill.Result, float]:
        name, target = plan.skeleton[k]
        if not self._skill_client.wait_for_server(timeout_sec=min(5.0, self.v["step_timeout_s"])):
            raise TaskError("the skill server (execute_skill) is not available")
        target_id = plan.object_ids[target]
        goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall(name, (target_id,), tuple(plan.parameters[k]))))
        seen = {o.id: o for o in scene.objects}
        if target_id in seen and seen[target_id].box is not None:     # where the target is, as perceived
            goal.target_boxes = [box_to_msg(seen[target_id].box)]
        goal.predicted_relations = relations_to_msg(RelationState(plan.object_ids, plan.step_relations[k]["unary"],
                                                                  plan.step_relations[k]["binary"], plan.frame_id,
                                                                  plan.stamp_ns))
        try:
            handle = wait_for(self._skill_client.send_goal_async(goal), self.v["step_timeout_s"], stop)
        except (TimeoutError, InterruptedError) as exc:
            raise TaskError(f"execute_skill: {exc}") from None
        if not handle.accepted:
            raise TaskError(f"the skill server rejected step {k} ({name})")
        try:
            wrapped = wait_for(handle.get_result_async(), self.v["step_timeout_s"], stop)
        except InterruptedError:
            wait_for(handle.cancel_goal_async(), 10.0)
            wait_for(handle.get_result_async(), self.v["step_timeout_s"])
            raise TaskError(f"cancelled during step {k} ({name})") from None
        except TimeoutError as exc:
            raise TaskError(f"step {k} ({name}): {exc}") from None
        if not wrapped.result.success:
            raise TaskError(f"step {k} ({name}) was not executed: {wrapped.result.message}")
        return wrapped.result, time.monotonic()

    def _record(self, plan: Plan, k: int, before: SegmentedScene, rel_before: RelationState, after: SegmentedScene,
                rel_after: RelationState, mismatches: list[dict], req, verdict: GuardianVerdict | None = None) -> str:
        """Write the failure event of step ``k`` durably to the spool and publish it; its id."""
        context = {"task_description": req.task_description, "plan_id": plan.plan_id,
                   "plan": [[s, int(t), [float(v) for v in a]] for (s, t), a in zip(plan.skeleton, plan.parameters)]}
        if verdict is not None:
            context["guardian"] = {"category": verdict.category, "confidence": float(verdict.confidence),
                                   "reasoning": verdict.reasoning}
        try:
            event = FailureEvent.from_plan_step(
                plan, k, robot_id=self.v["robot_id"], labels=before.labels, before=before.clouds,
                relations_before=(rel_before.unary, rel_before.binary), observed_after=(rel_after.unary, rel_after.binary),
                after=after.clouds, mismatches=mismatches, context=context, frame_id=before.frame_id,
                stamp_ns=after.stamp_ns)
            path, _ = self.queue.put(event)
        except (FailureEventError, OSError) as exc:
            raise TaskError(f"step {k} did not go as predicted, and its failure event could not be recorded: {exc}")
        self._events_pub.publish(failure_event_to_msg(event))
        self.get_logger().info(f"failure at step {k}: {len(mismatches)} mismatched relation(s); event {event.event_id} "
                               f"saved to {path}")
        return event.event_id


def main(args=None) -> None:
    run_node(TaskExecutorNode, args)


if __name__ == "__main__":
    main()
