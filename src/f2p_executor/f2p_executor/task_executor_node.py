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
client ``record_failure``  f2p_interfaces/SubmitFailure     the failure recorder: stores each
                                                            failure event durably, then answers
pub ``expected_motion``    f2p_interfaces/ExpectedMotion    before each skill: its target and
                                                            where the skill sends it (perception's
                                                            tracker looks for it there)
pub ``failure_events``     f2p_interfaces/FailureEvent      every failure event, once recorded
pub ``plan``               f2p_interfaces/Plan              every plan adopted (latched)
pub ``task_progress``      f2p_interfaces/TaskProgress      every stage (latched): goal, plan, step
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  per task: OK / WARN with the outcome
=========================  ===============================  ====================================

The task itself — the stages, their bounds (``max_plan_refusals``, ``max_step_retries``, the
goal's ``max_replans``, ``reobserve_frames``), routing and failure events — is
:class:`f2p_executor.task_runner.TaskRunner`'s, without ROS. This node adapts it: observations
are the latest scene paired with its relation state (by stamp); planning is ``plan_task``;
verification is the ``verifier`` / ``execution_verifier`` services when set (otherwise the
runner's own symbolic check, and the relation check alone); each step is an ``execute_skill``
goal (cancelled with the task); each failure event goes to the failure recorder's
``record_failure`` (the spool's one writer; the event counts as recorded only once it answered
``accepted``), then to ``failure_events`` for whoever watches. One task runs at a time: a goal
sent meanwhile is rejected. A goal over the ``max_request_*`` limits ends with
``ERROR_TOO_LARGE`` before anything runs; a bug, with ``ERROR_INTERNAL``. A camera that stops ends the task after ``observe_timeout_s`` with
that reason; a skill server or service that does not answer, after ``step_timeout_s``.
"""
from __future__ import annotations

import threading
import time

from rclpy.action import GoalResponse

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from f2p_common.interfaces import Plan, RelationState, SegmentedScene, SkillCall
from f2p_common.keys import SignatureError, public_key_of
from f2p_common.vocabulary import skill_displacement
from f2p_executor.task_runner import (ErrorCode, ExecutedStep, Observation, RunnerConfig, SkillEnd, TaskError,
                                      TaskOutcome, TaskRequest, TaskRunner)
from f2p_failure.events import FailureEvent, sign_event
from f2p_interfaces.action import ExecuteSkill, RunTask
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import Plan as PlanMsg
from f2p_interfaces.msg import ExpectedMotion, GuardianVerdict, PlanStep, Relation, TaskProgress
from f2p_interfaces.msg import RelationState as RelationStateMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_interfaces.srv import PlanTask, SubmitFailure, VerifyExecution, VerifyPlan
from f2p_ros.actions import ActionClient
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, PointCloudError, box_to_msg, expected_motion_to_msg,
                                 failure_event_to_msg, plan_from_msg, plan_to_msg, relations_from_msg,
                                 relations_to_msg, scene_from_msg, scene_to_msg, skill_call_from_msg,
                                 skill_call_to_msg, stage_to_msg, stamp_to_ns)
from f2p_ros.nodes import NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node, wait_for

PARAMS = [
    P.Param("robot_id", "sim", "robot id recorded in every failure event", live=True),
    P.Param("robot_key", "", "this robot's Ed25519 private key (f2p-sign keygen) signing every failure event it "
                             "records ('' = unsigned: a learner that enrols robots refuses them)"),
    P.Param("verifier", "", "VerifyPlan service that checks plans before acting ('' = the executor's own check)"),
    P.Param("execution_verifier", "", "VerifyExecution service that checks each step after acting ('' = the "
                                      "relation check alone)"),
    P.Param("max_step_retries", 2, "steps run again per task after the execution verifier saw a slip",
            P.positive_or_zero, live=True),
    P.Param("max_plan_refusals", 2, "plans the verifier may refuse per task; after each the planner searches "
            "again, away from the refused ones", P.positive_or_zero, live=True),
    P.Param("min_goal_probability", 0.0, "own check: refuse plans whose predicted p(goal) is lower (0 = never)",
            P.probability, live=True),
    P.Param("reobserve_frames", 3, "after a step, further frames tried when one does not show the plan's objects "
            "(an object missed or split by segmentation)", P.positive_or_zero, live=True),
    P.Param("max_request_goal_literals", 32, "most goal literals a RunTask goal may have", P.at_least(1), live=True),
    P.Param("max_request_skeleton_steps", 8, "longest skeleton a RunTask goal may give", P.at_least(1), live=True),
    P.Param("max_request_replans", 10, "most max_replans a RunTask goal may ask for", P.positive_or_zero, live=True),
    P.Param("max_request_description_chars", 4096, "longest task_description a RunTask goal may have",
            P.at_least(1), live=True),
    P.Param("observe_timeout_s", 10.0, "longest wait for an observation (s)", P.positive, live=True),
    P.Param("step_timeout_s", 120.0, "longest wait for a skill or a service (s)",
            P.positive, live=True),
    P.Param("record_timeout_s", 30.0, "longest wait for the failure recorder to store an event (s)",
            P.positive, live=True),
]


def _scene_msg(obs: Observation) -> SegmentedSceneMsg:
    return obs.raw[0] if obs.raw is not None else scene_to_msg(obs.scene)


def _step_msg(step: ExecutedStep) -> PlanStep:
    return PlanStep(skill=skill_call_to_msg(step.call), predicted_relations=relations_to_msg(step.predicted))


#: ExecuteSkill's error codes by value, named (ERROR_ROBOT_STOPPED -> "robot stopped").
_SKILL_ERRORS = {getattr(ExecuteSkill.Result, n): n[len("ERROR_"):].lower().replace("_", " ")
                 for n in dir(ExecuteSkill.Result) if n.startswith("ERROR_")}


class TaskExecutorNode(ManagedNode):
    """The RunTask action over a :class:`TaskRunner`; the node is the runner's observer, planner,
    skills, verifier and recorder (module docstring)."""

    def __init__(self, **kwargs):
        super().__init__("task_executor", **kwargs)
        P.declare(self, PARAMS)
        self._busy = threading.Lock()
        self._seen = threading.Condition()
        self._scenes: dict[int, tuple[SegmentedSceneMsg, float]] = {}   # stamp -> (scene, arrival)
        self._pairs: list[tuple[SegmentedSceneMsg, RelationStateMsg, float]] = []
        self._events_pub = self._diag = self._plan_pub = self._progress_pub = None
        self.tasks_run = 0
        calls = self._calls = ReentrantCallbackGroup()
        self._obs_group = MutuallyExclusiveCallbackGroup()
        self._plan_client = self.create_client(PlanTask, "plan_task", callback_group=calls)
        self._record_client = self.create_client(SubmitFailure, "record_failure", callback_group=calls)
        self._skill_client = self.until_destroyed(ActionClient(self, ExecuteSkill, "execute_skill", callback_group=calls))
        self._verify_client = self._step_client = None
        self.create_guarded_action_server(RunTask, "run_task", self._execute, self._on_goal, callback_group=calls)

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.v = P.load(self, PARAMS)
            if self.v["robot_key"]:
                public_key_of(self.v["robot_key"])          # a key that cannot sign: refuse now, not at the first failure
            self.runner = TaskRunner(self._runner_config(), observer=self, planner=self, skills=self, verifier=self,
                                     recorder=self, log=lambda m: self.get_logger().info(m))
        except (ValueError, SignatureError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        if self.v["verifier"]:
            self._verify_client = self.until_cleanup(self.create_client(VerifyPlan, self.v["verifier"],
                                                                        callback_group=ReentrantCallbackGroup()))
        if self.v["execution_verifier"]:
            self._step_client = self.until_cleanup(self.create_client(VerifyExecution, self.v["execution_verifier"],
                                                                      callback_group=ReentrantCallbackGroup()))
        pub = NO_EVENT_HANDLERS["pub"]
        latched = qos.latched()
        self._diag = self.create_diagnostics_publisher()
        self._events_pub, self._plan_pub, self._progress_pub, self._motion_pub = (
            self.until_cleanup(self.create_lifecycle_publisher(msg_type, topic, profile, event_callbacks=pub))
            for msg_type, topic, profile in ((FailureEventMsg, "failure_events", qos.events()),
                                             (PlanMsg, "plan", latched), (TaskProgress, "task_progress", latched),
                                             (ExpectedMotion, "expected_motion", qos.events())))
        self.get_logger().info(f"configured: failure events go to {self._record_client.srv_name}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        latched = qos.latched()
        sub = NO_EVENT_HANDLERS["sub"]
        for msg_type, topic, callback in ((SegmentedSceneMsg, "segmented_scene", self._on_scene),
                                          (RelationStateMsg, "relation_state", self._on_relations)):
            self.until_deactivate(self.create_subscription(msg_type, topic, callback, latched,
                                                           callback_group=self._obs_group, event_callbacks=sub))
        return super().on_activate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._events_pub = self._diag = self._plan_pub = self._progress_pub = None
        self._verify_client = self._step_client = None
        return super().on_cleanup(state)

    def _runner_config(self) -> RunnerConfig:
        """The runner's settings from the parameters (live: read again for every task)."""
        return RunnerConfig(**{k: self.v[k] for k in (
            "robot_id", "max_step_retries", "max_plan_refusals", "min_goal_probability", "reobserve_frames",
            "max_request_goal_literals", "max_request_skeleton_steps", "max_request_replans",
            "max_request_description_chars")})

    # --- the task ----------------------------------------------------------------------
    def _on_goal(self, goal) -> GoalResponse:
        # An accepted goal holds _busy until its execution ends: a second one is rejected at once.
        if not self.is_active or not self._busy.acquire(blocking=False):
            self.get_logger().warning("rejected a run_task goal: " +
                                      ("not active" if not self.is_active else "a task is already running"))
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle) -> RunTask.Result:
        req = goal_handle.request

        def progress(stage: str, k: int = 0, n: int = 0, fraction: float = 0.0, status: str = "", plan_id: str = "",
                     outcome: TaskOutcome | None = None):
            msg = TaskProgress(goal_id=bytes(goal_handle.goal_id.uuid).hex(), stage=stage_to_msg(TaskProgress, stage),
                               plan_id=plan_id, step_index=k, num_steps=n, status=status)
            if outcome is not None:
                msg.success, msg.model_version = bool(outcome.success), outcome.model_version
            msg.header.stamp = self.get_clock().now().to_msg()
            if stage != "done":
                goal_handle.publish_feedback(RunTask.Feedback(progress=msg, fraction=float(fraction)))
            self._progress_pub.publish(msg)

        try:
            self.runner.cfg = self._runner_config()
            self.runner.cfg.check_request(len(req.goal), len(req.skeleton), int(req.max_replans),
                                          len(req.task_description))        # before converting anything
            try:
                skeleton = tuple(skill_call_from_msg(c) for c in req.skeleton)
            except ConversionError as exc:
                raise TaskError(f"bad skeleton: {exc}", ErrorCode.INVALID_GOAL) from None
            request = TaskRequest(goal=[(g.predicate, g.subject_id, g.object_id) for g in req.goal],
                                  task_description=req.task_description, skeleton=skeleton,
                                  max_replans=int(req.max_replans), observe_after_ns=stamp_to_ns(req.observe_after))
            outcome = self.runner.run(request, progress, lambda: goal_handle.is_cancel_requested)
        except TaskError as exc:
            outcome = TaskOutcome(error_code=exc.code, message=str(exc), predictions_met=True)
        finally:
            self._busy.release()                 # taken when the goal was accepted
        result = RunTask.Result(error_code=int(outcome.error_code), success=outcome.success,
                                goal_observed=outcome.goal_observed,
                                predictions_met=outcome.predictions_met, message=outcome.message,
                                executed_steps=[_step_msg(s) for s in outcome.executed_steps],
                                failure_event_ids=list(outcome.failure_event_ids),
                                step_verdicts=list(outcome.step_verdicts), retries=outcome.retries)
        if outcome.final is not None:
            result.final_relations = (outcome.final.raw[1] if outcome.final.raw is not None
                                      else relations_to_msg(outcome.final.relations))
        self.tasks_run += 1
        n = len(result.executed_steps)
        progress("done", n, n, 1.0, result.message, outcome=outcome)
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif outcome.ended:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self._diag.publish(diagnostics(self, "task", OK if result.success else WARN, result.message,
                                       tasks=self.tasks_run, events=len(result.failure_event_ids)))
        return result

    # --- observer ------------------------------------------------------------------------
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

    def observe(self, received_after: float, stamped_after_ns: int, stop) -> Observation:
        """The first scene and relation state received after ``received_after`` (monotonic s) and
        stamped no earlier than ``stamped_after_ns``."""
        deadline = time.monotonic() + self.v["observe_timeout_s"]
        with self._seen:
            while True:
                for scene_msg, rel_msg, arrived in reversed(self._pairs):
                    if arrived > received_after and stamp_to_ns(rel_msg.header.stamp) >= stamped_after_ns:
                        try:
                            return Observation(scene_from_msg(scene_msg), relations_from_msg(rel_msg),
                                               (scene_msg, rel_msg))
                        except (ConversionError, PointCloudError) as exc:
                            raise TaskError(f"an unusable observation: {exc}", ErrorCode.NO_OBSERVATION) from None
                if stop():
                    raise TaskError("cancelled", ErrorCode.CANCELLED)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TaskError(f"no observation (segmented_scene with its relation_state) for "
                                    f"{self.v['observe_timeout_s']:g} s: is the camera publishing?",
                                    ErrorCode.NO_OBSERVATION)
                self._seen.wait(min(left, 0.1))

    # --- planner -------------------------------------------------------------------------
    def _call(self, client, request, what: str, stop, code: ErrorCode, timeout: float | None = None):
        """A service call from the task's thread: its response; TaskError (``code``) when it is
        not there or does not answer within ``timeout`` (default ``step_timeout_s``), or the task
        is cancelled."""
        timeout = self.v["step_timeout_s"] if timeout is None else timeout
        if not client.wait_for_service(timeout_sec=min(5.0, timeout)):
            raise TaskError(f"{what} ({client.srv_name}) is not available", code)
        try:
            return wait_for(client.call_async(request), timeout, stop)
        except TimeoutError as exc:
            raise TaskError(f"{what} ({client.srv_name}): {exc}", code) from None
        except InterruptedError:
            raise TaskError("cancelled", ErrorCode.CANCELLED) from None

    def plan(self, request: TaskRequest, obs: Observation, refused, stop) -> Plan:
        goal = [Relation(predicate=p, subject_id=s, object_id=o) for p, s, o in request.goal]
        resp = self._call(self._plan_client, PlanTask.Request(
            scene=_scene_msg(obs), goal=goal, skeleton=[skill_call_to_msg(c) for c in request.skeleton],
            refused_plans=[plan_to_msg(p) for p in refused]), "the planner", stop, ErrorCode.PLANNING_FAILED)
        if not resp.success:
            code = (ErrorCode.INVALID_GOAL if resp.error_code == PlanTask.Response.ERROR_INVALID_REQUEST
                    else ErrorCode.PLANNING_FAILED)
            raise TaskError(f"planning failed: {resp.message}", code)
        try:
            plan = plan_from_msg(resp.plan)
        except ConversionError as exc:
            raise TaskError(f"the planner's plan is malformed: {exc}", ErrorCode.PLANNING_FAILED) from None
        if plan.skeleton:
            self._plan_pub.publish(resp.plan)
        return plan

    # --- verifier ------------------------------------------------------------------------
    def verify_plan(self, request: TaskRequest, obs: Observation, plan: Plan, stop) -> list[str]:
        if self._verify_client is None:
            return []
        try:
            resp = self._call(self._verify_client, VerifyPlan.Request(
                task_description=request.task_description, scene=_scene_msg(obs), plan=plan_to_msg(plan)),
                "the verifier", stop, ErrorCode.PLAN_REFUSED)
        except TaskError as exc:
            if exc.code == ErrorCode.CANCELLED:
                raise
            return [str(exc)]
        if not resp.success:
            return [f"the verifier cannot verify the plan: {resp.message}"]
        if resp.verdict.verdict == GuardianVerdict.VERDICT_FAILURE:
            return [f"the verifier refuses the plan ({resp.verdict.category}): {resp.verdict.reasoning[:200]}"]
        return []

    def verify_step(self, request: TaskRequest, step: ExecutedStep, before: Observation, after: Observation,
                    stop) -> GuardianVerdict | None:
        """The execution verifier's verdict on a step (None without one, or when it cannot answer:
        the relation check then decides alone, and the reason is logged)."""
        if self._step_client is None:
            return None
        try:
            resp = self._call(self._step_client, VerifyExecution.Request(
                task_description=request.task_description, step=_step_msg(step), before=_scene_msg(before),
                after=_scene_msg(after)), "the execution verifier", stop, ErrorCode.STEP_UNCHECKABLE)
        except TaskError as exc:
            if exc.code == ErrorCode.CANCELLED:
                raise
            self.get_logger().warning(str(exc))
            return None
        if not resp.success:
            self.get_logger().warning(f"execution verifier: {resp.message}")
            return None
        return resp.verdict

    # --- skills --------------------------------------------------------------------------
    def execute(self, plan: Plan, k: int, scene: SegmentedScene, stop) -> SkillEnd:
        name, target = plan.skeleton[k]
        if not self._skill_client.wait_for_server(timeout_sec=min(5.0, self.v["step_timeout_s"])):
            raise TaskError("the skill server (execute_skill) is not available", ErrorCode.SKILL_FAILED)
        target_id = plan.object_ids[target]
        goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall(name, (target_id,), tuple(plan.parameters[k]))))
        goal.header.frame_id = scene.frame_id                      # boxes and parameters: the scene's frame
        goal.header.stamp = self.get_clock().now().to_msg()
        seen = {o.id: o for o in scene.objects}
        if target_id in seen and seen[target_id].box is not None:     # where the target is, as perceived
            goal.target_boxes = [box_to_msg(seen[target_id].box)]
        goal.predicted_relations = relations_to_msg(RelationState(plan.object_ids, plan.step_relations[k]["unary"],
                                                                  plan.step_relations[k]["binary"], plan.frame_id,
                                                                  plan.stamp_ns))
        displacement = skill_displacement(name, plan.parameters[k])
        if displacement is not None:                                # where perception is to look for it next
            self._motion_pub.publish(expected_motion_to_msg(target_id, displacement, scene.frame_id,
                                                            self.get_clock().now().nanoseconds))
        try:
            handle = wait_for(self._skill_client.send_goal_async(goal), self.v["step_timeout_s"], stop)
        except (TimeoutError, InterruptedError) as exc:
            code = ErrorCode.CANCELLED if isinstance(exc, InterruptedError) else ErrorCode.SKILL_FAILED
            raise TaskError("cancelled" if code == ErrorCode.CANCELLED else f"execute_skill: {exc}", code) from None
        if not handle.accepted:
            raise TaskError(f"the skill server rejected step {k} ({name})", ErrorCode.SKILL_FAILED)
        try:
            wrapped = wait_for(handle.get_result_async(), self.v["step_timeout_s"], stop)
        except InterruptedError:
            wait_for(handle.cancel_goal_async(), 10.0)
            wait_for(handle.get_result_async(), self.v["step_timeout_s"])
            raise TaskError(f"cancelled during step {k} ({name})", ErrorCode.CANCELLED) from None
        except TimeoutError as exc:
            raise TaskError(f"step {k} ({name}): {exc}", ErrorCode.SKILL_FAILED) from None
        if not wrapped.result.success:
            # not a model failure: the skill did not run as planned (out of reach, a controller
            # fault, a runstop or protective stop); the task ends and says which, no event is recorded
            why = _SKILL_ERRORS.get(wrapped.result.error_code, str(wrapped.result.error_code))
            raise TaskError(f"step {k} ({name}) was not executed ({why}): {wrapped.result.message}",
                            ErrorCode.SKILL_FAILED)
        return SkillEnd(time.monotonic(), stamp_to_ns(wrapped.result.finished))

    # --- recorder ------------------------------------------------------------------------
    def record(self, event: FailureEvent, stop) -> str:
        """The failure recorder stores ``event`` (it alone writes the spool); once it accepted it,
        the event goes to ``failure_events``. Where it was stored."""
        msg = failure_event_to_msg(event)
        signature = sign_event(event, self.v["robot_key"]) if self.v["robot_key"] else ""
        deadline = time.monotonic() + self.v["record_timeout_s"]
        while True:
            try:
                resp = self._call(self._record_client, SubmitFailure.Request(event=msg, signature=signature),
                                  "the failure recorder", stop,
                                  ErrorCode.RECORD_FAILED, min(5.0, max(0.1, deadline - time.monotonic())))
                break
            except TaskError as exc:
                if exc.code == ErrorCode.CANCELLED or time.monotonic() >= deadline:
                    raise
            # no answer: a recorder that restarted may not answer this client again (seen with Fast
            # DDS after many restarts); the same event through a new client (the spool is idempotent)
            self.destroy_client(self._record_client)
            self._record_client = self.create_client(SubmitFailure, "record_failure",
                                                     callback_group=self._calls)
        if not resp.accepted:
            raise TaskError(f"the failure recorder refused it: {resp.message}", ErrorCode.RECORD_FAILED)
        self._events_pub.publish(msg)
        return resp.stored_uri


def main(args=None) -> None:
    run_node(TaskExecutorNode, args)


if __name__ == "__main__":
    main()
