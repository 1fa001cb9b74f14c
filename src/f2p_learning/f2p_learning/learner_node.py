"""``learner`` lifecycle node (off-board): failure events in, signed validated models onto the robot.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
srv ``submit_failure``     f2p_interfaces/SubmitFailure     ``accepted`` once the event is in the
                                                            learner's queue on disk (idempotent:
                                                            a resent event is acknowledged again)
pub ``learner/progress``   f2p_interfaces/LearnerProgress   each job's stages (queued, classify,
                                                            infer, simulate, fine_tune, validate,
                                                            store, swap, done / failed)
pub ``model_updates``      f2p_interfaces/ModelUpdate       every model learned (latched, last 10):
                                                            deployable or not, and why
srv ``fetch_model``        f2p_interfaces/FetchModel        a model of the registry by SHA-256,
                                                            in chunks: how robots that share no
                                                            disk with the learner get it
srv ``approve_model``      f2p_interfaces/ApproveModel      an operator sends a child to the
                                                            whole fleet (f2p_learning.fleet)
client ``<ns>/swap_model`` f2p_interfaces/SwapModel         each robot's planner: a deployable,
                                                            signed child is pushed by content
                                                            (sha256, no uri), canary first
client ``<ns>/rollback_model``  f2p_interfaces/RollbackModel  a robot whose first task on a child
                                                            failed goes back
sub ``<ns>/model_info``    f2p_interfaces/ModelInfo         each planner's active model (latched):
                                                            who serves what; the regression
                                                            gate's reference
sub ``<ns>/task_progress`` f2p_interfaces/TaskProgress      each executor's tasks: a child's first
                                                            task on a robot, success or not
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  queue depth, the running job, last
                                                            outcome
=========================  ===============================  ====================================

The work is :class:`f2p_learning.jobs.Learner`'s: a durable queue, one job at a time in a worker
process (the learn step on the learner's ``LearnConfig``, torch threads ``worker_threads``) so
the node's executor never blocks, a model store with lineage. The parameters
(:data:`f2p_learning.jobs.PARAMS`) map onto the jobs' settings in one place,
:func:`f2p_learning.jobs.learner_config`. **Who swaps**: the learner pushes (``push_to_robot``) each
deployable child to the planner's ``swap_model`` by content (its SHA-256 and signature, no
path): a planner that does not have it fetches it from ``fetch_model`` into its own model cache
(``f2p_common.model_transfer``), so the learner and the robot need not share a disk; the planner admits it only after its own
checks (SHA-256, the Ed25519 signature by ``signing_key``'s public half when the robot sets
``require_signed``, vocabulary, architecture, the gate's verdict) and keeps the old model on
refusal; an operator can ``rollback_model`` at any time. With a ``signing_key`` the learner also
signs each swap and rollback request for the robot it goes to (``f2p_common.commands``), which a planner
with ``require_signed_commands`` and the key's ``.pub`` among its ``command_keys`` demands.
**Many robots** (``robots``: ``robot_id=/namespace`` each; ``<ns>`` above): a child goes first to the robot
whose failure it learned from (the canary), then to every robot serving its parent once the canary
succeeded on it or an operator approved it; a robot whose first task on it fails is rolled back and
the rollout halts (``f2p_learning.fleet``; rollouts kept in ``<queue_dir>/rollouts.json``). With ``push_to_robot`` false, a robot
stack that prefers to pull listens to ``model_updates`` and calls ``swap_model`` itself.
Deactivating stops a running job (its event stays queued and runs again on activation).
"""
from __future__ import annotations

import dataclasses
import queue
import shutil
import threading

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from f2p_common.commands import sign_command
from f2p_common.keys import SignatureError
from f2p_common.model_transfer import DEFAULT_CHUNK_BYTES, check_sha256, read_chunk
from f2p_failure.events import FailureEventError
from f2p_failure.queue import EventIdConflict
from f2p_interfaces.msg import LearnerProgress, ModelUpdate, TaskProgress
from f2p_interfaces.msg import ModelInfo as ModelInfoMsg
from f2p_interfaces.srv import ApproveModel, FetchModel, RollbackModel, SubmitFailure, SwapModel
from f2p_learning.fleet import Actions, Fleet, parse_robots
from f2p_learning.jobs import PARAMS, JobResult, Learner, learner_config
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, command_auth_to_msg, failure_event_from_msg, model_chunk_to_response,
                                 model_info_to_msg, stage_to_msg)
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node, wait_for
from f2p_skill_effect.checkpoint import model_info


#: The largest chunk fetch_model sends, whatever a request asks.
MAX_CHUNK_BYTES = 4 << 20


class LearnerNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("learner", **kwargs)
        P.declare(self, PARAMS)
        self.learner: Learner | None = None
        self._pubs = {}
        self._stop, self._wake = threading.Event(), threading.Event()
        self.running, self.last_result = "", None
        self._calls = ReentrantCallbackGroup()
        self.create_guarded_service(SubmitFailure, "submit_failure", self._on_submit, callback_group=self._calls)
        self.create_guarded_service(FetchModel, "fetch_model", self._on_fetch, callback_group=self._calls)
        self.create_guarded_service(ApproveModel, "approve_model", self._on_approve, callback_group=self._calls)
        self.fleet: Fleet | None = None
        self._robots: dict[str, dict] = {}                 # robot_id -> its namespace's clients
        self._deploy = queue.Queue()                       # Actions for the deploy thread

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.v = P.load(self, PARAMS)
            self.learner = Learner(learner_config(self.v))
            robots = parse_robots(self.v["robots"]) if any(self.v["robots"]) else {self.v["robot_id"]: ""}
            self.fleet = Fleet(robots, self.learner.queue.folder / "rollouts.json")
        except (ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        latched = qos.latched(10)
        pub = NO_EVENT_HANDLERS["pub"]
        self._pubs = {"progress": self.until_cleanup(self.create_lifecycle_publisher(
                          LearnerProgress, "learner/progress", 50, event_callbacks=pub)),
                      "updates": self.until_cleanup(self.create_lifecycle_publisher(
                          ModelUpdate, "model_updates", latched, event_callbacks=pub)),
                      "diag": self.create_diagnostics_publisher()}
        self._robots = {rid: {"ns": ns, "swap": self.until_cleanup(self.create_client(
                             SwapModel, f"{ns}/swap_model" if ns else "swap_model", callback_group=self._calls)),
                              "rollback": self.until_cleanup(self.create_client(
                             RollbackModel, f"{ns}/rollback_model" if ns else "rollback_model",
                             callback_group=self._calls))} for rid, ns in robots.items()}
        if not self.v["signing_key"]:
            self.get_logger().warning("no signing_key: children are unsigned, robots with require_signed refuse them")
        if not self.v["enrolled_robots"]:
            self.get_logger().warning("no enrolled_robots: failure events are taken unsigned, from anyone on the domain")
        self.get_logger().info(f"configured: queue {self.learner.queue.folder} ({self.learner.queue.stats().pending} "
                               f"pending), store {self.learner.store.folder}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop.clear()
        # the job thread publishes and calls services: deactivate, shutdown and destroy_node stop it first
        self.start_worker(self._work, "jobs", stop=self._halt, join_timeout=60.0)
        self.start_worker(self._deploy_work, "deploy", stop=lambda: self._deploy.put(None))
        self.until_deactivate(self.create_timer(1.0, self._publish_diagnostics))
        sub = NO_EVENT_HANDLERS["sub"]
        for rid, robot in self._robots.items():
            ns = robot["ns"]
            self.until_deactivate(self.create_subscription(
                ModelInfoMsg, f"{ns}/model_info" if ns else "model_info",
                lambda msg, rid=rid: self._on_model_info(rid, msg), qos.latched(), callback_group=self._calls,
                event_callbacks=sub))
            self.until_deactivate(self.create_subscription(
                TaskProgress, f"{ns}/task_progress" if ns else "task_progress",
                lambda msg, rid=rid: self._on_task_progress(rid, msg), qos.latched(), callback_group=self._calls,
                event_callbacks=sub))
        return super().on_activate(state)

    def _on_model_info(self, robot: str, msg: ModelInfoMsg) -> None:
        """A robot's active model: who serves what (fleet), and the gate's reference when the
        registry holds it (jobs docstring)."""
        if self.learner is None:
            return
        if self.learner.note_deployed(msg.version, msg.sha256):
            self.get_logger().info(f"{robot} runs {msg.version}: children are gated against it")
        for actions in self.fleet.note_serving(robot, msg.version):
            self._deploy.put(actions)

    def _on_task_progress(self, robot: str, msg: TaskProgress) -> None:
        if self.fleet is not None and msg.stage == TaskProgress.STAGE_DONE and msg.model_version:
            actions = self.fleet.task_done(robot, msg.model_version, bool(msg.success))
            if actions.push or actions.rollback:
                self._deploy.put(actions)

    def _on_approve(self, req: ApproveModel.Request, resp: ApproveModel.Response) -> ApproveModel.Response:
        if not self.is_active:
            resp.success, resp.message = False, "the learner is not active"
            return resp
        who = req.requested_by or "approve_model caller"
        try:
            actions = self.fleet.approve(req.version, who)
        except KeyError:
            resp.success = False
            resp.message = f"no rollout of version {req.version!r}; known: {sorted(self.fleet.rollouts)[-10:]}"
            return resp
        self._deploy.put(actions)
        resp.success, resp.message, resp.robots = True, actions.note, list(actions.push)
        self.get_logger().info(f"{actions.note} ({', '.join(actions.push) or 'no robot serves the parent now'})")
        return resp

    def _halt(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.learner is not None:
            self.learner.stop()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pubs, self.learner, self.fleet, self._robots = {}, None, None, {}
        return super().on_cleanup(state)

    # --- the queue -------------------------------------------------------------------
    def _on_submit(self, req: SubmitFailure.Request, resp: SubmitFailure.Response) -> SubmitFailure.Response:
        resp.event_id = req.event.event_id
        if not self.is_active:
            resp.accepted, resp.retry, resp.message = False, True, "the learner is not active"
            resp.error_code = SubmitFailure.Response.ERROR_NOT_ACTIVE
            return resp
        try:
            event = failure_event_from_msg(req.event, self.v["max_event_segments"],
                                           int(self.v["max_event_mb"] * 2 ** 20))
            path, state = self.learner.submit(event, req.signature)
        except SignatureError as exc:
            resp.accepted, resp.message, resp.error_code = False, str(exc), SubmitFailure.Response.ERROR_NOT_AUTHENTIC
            self.get_logger().warning(f"refused: {exc}")
            return resp
        except EventIdConflict as exc:
            resp.accepted, resp.message, resp.error_code = False, str(exc), SubmitFailure.Response.ERROR_CONFLICT
            self.get_logger().warning(f"refused: {exc}")
            return resp
        except (ConversionError, FailureEventError, ValueError) as exc:
            resp.accepted, resp.message = False, f"malformed failure event: {exc}"
            resp.error_code = SubmitFailure.Response.ERROR_MALFORMED
            return resp
        except OSError as exc:
            resp.accepted, resp.retry, resp.error_code = False, True, SubmitFailure.Response.ERROR_STORAGE
            resp.message = f"cannot write the learner's queue: {exc.strerror or exc}"
            self.get_logger().error(resp.message)
            return resp
        resp.accepted, resp.message, resp.stored_uri = True, state, str(path)
        if state == "queued":
            self._progress(event.event_id, "queued", 0.0, f"{self.learner.queue.stats().pending} pending")
            self._wake.set()
        return resp

    # --- jobs ------------------------------------------------------------------------
    def _progress(self, event_id: str, stage: str, fraction: float, status: str) -> None:
        msg = LearnerProgress(event_id=event_id, stage=stage_to_msg(LearnerProgress, stage), fraction=float(fraction),
                              status=status[:500])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pubs["progress"].publish(msg)
        self.get_logger().info(f"[{event_id[:8]}] {stage} {100 * fraction:.0f}%: {status}")

    def _work(self) -> None:
        while not self._stop.is_set():
            pending = self.learner.queue.pending()
            if not pending:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.running = pending[0].stem
            result = self.learner.run_next(self._progress, lambda line: self.get_logger().debug(line))
            self.running = ""
            if result is None or self._stop.is_set() and result.outcome == "interrupted":
                continue
            self.last_result = result
            if result.outcome == "no_space":              # the event stays queued: try again once space may be back
                self.get_logger().error(f"disk full, retrying in {self.v['no_space_retry_s']:g} s: {result.reason}")
                self._stop.wait(self.v["no_space_retry_s"])
                continue
            if result.model is not None:
                self._announce(result)

    # --- models by content ------------------------------------------------------------
    def _on_fetch(self, req: FetchModel.Request, resp: FetchModel.Response) -> FetchModel.Response:
        if not self.is_active:
            resp.error_code, resp.message = FetchModel.Response.ERROR_NOT_ACTIVE, "the learner is not active"
            return resp
        try:
            sha = check_sha256(req.sha256)
        except ValueError as exc:
            resp.error_code, resp.message = FetchModel.Response.ERROR_BAD_REQUEST, str(exc)
            return resp
        found = self.learner.registry_file(sha)
        if found is None:
            resp.error_code = FetchModel.Response.ERROR_NOT_FOUND
            resp.message = f"the learner has no model with SHA-256 {sha}"
            return resp
        path, info = found
        return model_chunk_to_response(read_chunk(path, info, int(req.offset),
                                                  min(int(req.max_bytes) or DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES)),
                                       resp)

    def _announce(self, result: JobResult) -> None:
        info = model_info(result.model.path)
        update = ModelUpdate(model=model_info_to_msg(info), event_ids=[result.event_id], deployable=result.deployable,
                             reason=result.reason)
        update.header.stamp = self.get_clock().now().to_msg()
        self._pubs["updates"].publish(update)
        if not (result.deployable and self.v["push_to_robot"]):
            return
        actions = self.fleet.child_learned(info.version, info.sha256, info.parent_version, result.robot_id)
        if not actions.push:
            self._progress(result.event_id, "swap", 1.0, f"{actions.note}; robots can pull {info.version} from "
                                                         "model_updates")
        self._carry_out(actions, result.event_id)

    def _deploy_work(self) -> None:
        """The deploy thread: carries out what the fleet decides outside a job (a canary's success,
        an approval, a robot that came to serve a parent, a regression)."""
        while True:
            actions = self._deploy.get()
            if actions is None or self._stop.is_set():
                return
            self._carry_out(actions, "")

    def _carry_out(self, actions: Actions, event_id: str) -> None:
        """Swap ``actions.push`` robots to the rollout's child (by content, signed for each robot)
        and roll ``actions.rollback`` robots back; each answer goes to the fleet and progress."""
        if actions.note and (actions.push or actions.rollback):
            self.get_logger().info(actions.note)
        rollout = self.fleet.rollouts.get(actions.version)
        found = self.learner.registry_file(rollout.sha256) if rollout is not None and actions.push else None
        if actions.push and found is None:
            self._progress(event_id, "swap", 1.0, f"{actions.version} is not in the learner's registry: not sent")
            return
        for robot in actions.push:
            by_content = model_info_to_msg(dataclasses.replace(found[1], uri=""))   # the robot fetches what it lacks
            request = SwapModel.Request(model=by_content, requested_by=(
                f"learner: learned from failure event {event_id}" if event_id else f"learner: {actions.note}"))
            if self.v["signing_key"]:                      # a robot with require_signed_commands checks it
                request.auth = command_auth_to_msg(sign_command(self.v["signing_key"], "swap_model", robot,
                                                                rollout.sha256))
            resp = self._ask(self._robots[robot]["swap"], request, event_id, robot)
            if resp is not None:
                self.fleet.swap_answered(robot, rollout.version, resp.success)
                self._progress(event_id, "swap", 1.0, f"{robot}: {'swapped to' if resp.success else 'the planner refused'} "
                                                      f"{rollout.version}: {resp.message}")
        for robot in actions.rollback:
            request = RollbackModel.Request(requested_by=f"learner: {actions.note}")
            if self.v["signing_key"]:
                request.auth = command_auth_to_msg(sign_command(self.v["signing_key"], "rollback_model", robot, ""))
            resp = self._ask(self._robots[robot]["rollback"], request, event_id, robot)
            if resp is not None:
                self._progress(event_id, "swap", 1.0, f"{robot}: {'rolled back' if resp.success else 'rollback refused'}"
                                                      f": {resp.message}")

    def _ask(self, client, request, event_id: str, robot: str):
        """A planner's answer, or None (said on progress) when there is none."""
        where = self.resolve_service_name(client.srv_name)
        if not client.wait_for_service(timeout_sec=5.0):
            self._progress(event_id, "swap", 1.0, f"{robot}: no planner on {where}")
            return None
        try:
            return wait_for(client.call_async(request), self.v["swap_timeout_s"], self._stop.is_set)
        except (TimeoutError, InterruptedError) as exc:
            self._progress(event_id, "swap", 1.0, f"{robot}: the planner on {where} did not answer: {exc}")
            return None

    def _publish_diagnostics(self) -> None:
        stats = self.learner.queue.stats()
        last = self.last_result
        level = (ERROR if last is not None and (last.state == "failed" or last.outcome == "no_space")
                 else WARN if stats.pending else OK)
        self._diag.publish(diagnostics(
            self, "jobs", level, f"learning {self.running[:8]}" if self.running else
            (f"last: {last.outcome} ({last.reason})" if last else "idle"), pending=stats.pending,
            oldest_age_s=f"{stats.oldest_age_s:.1f}", **{f"in_{k}": v for k, v in stats.moved.items()},
            models=len(self.learner.store.versions()), free_mb=shutil.disk_usage(self.learner.queue.folder).free >> 20))

    @property
    def _diag(self):
        return self._pubs["diag"]


def main(args=None) -> None:
    run_node(LearnerNode, args)


if __name__ == "__main__":
    main()
