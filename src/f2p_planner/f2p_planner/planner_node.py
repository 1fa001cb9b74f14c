"""``planner`` lifecycle node: plans with the skill-effect model Γ and hot-swaps it (paper 000 §3, §5).

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
srv ``plan_task``          f2p_interfaces/PlanTask          goal (+ optional skeleton) -> plan
                                                            with parameters, predicted relations
                                                            per step, p(goal), model version;
                                                            never one of the request's
                                                            refused_plans (or near one)
srv ``swap_model``         f2p_interfaces/SwapModel         admit a checkpoint and make it active
                                                            (``dry_run``: admit only)
srv ``rollback_model``     f2p_interfaces/RollbackModel     back to the model the last swap replaced
                                                            (once)
client ``fetch_model``     f2p_interfaces/FetchModel        the learner's: a model swap_model names
                                                            by content and the cache lacks
pub ``model_info``         f2p_interfaces/ModelInfo         the active model; transient local
sub ``segmented_scene``    f2p_interfaces/SegmentedScene    the latest observation, used when a
                                                            PlanTask request's scene is empty
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  per request: OK / ERROR with why
=========================  ===============================  ====================================

Model governance (``f2p_planner.model_slot``): a checkpoint serves only when it lies in one of
``model_dirs``, and, from one read of its bytes, its SHA-256 matches the request, its Ed25519
signature verifies against ``public_key`` when ``require_signed`` is true, it loads as a
weights-only checkpoint of f2p's vocabulary and the serving model's architecture, and it passes
the admission probe (finite weights and outputs, ``admission_min_*`` scores); a refused one
leaves the active model serving. A swap_model request that names its model by content (its
``sha256``, ``uri`` empty, as the learner's pushes do) is served from the planner's own
``model_cache`` folder, fetched first from ``fetch_model`` in chunks when absent
(``f2p_common.model_transfer``: resumed after a cut, each chunk and the whole file checked
against their SHA-256, renamed into place only whole), then admitted like any candidate; the
cache keeps ``model_cache_keep`` models besides the serving and previous ones. Any client that can reach the ``swap_model`` service may
request a swap (the learner does, issue 30); on a robot, set ``require_signed`` so that only
checkpoints signed by the learner's key are accepted. Swaps are atomic between requests: a plan
in flight finishes on the model it started with.

Requests are bounded (``max_request_*``: refused with ``ERROR_TOO_LARGE``); up to
``max_concurrent_plans`` plans run at once, each on its own executor thread, so a long plan
never holds up a short one (more at once: ``ERROR_BUSY``); model changes run in their own
callback group, so a swap never waits for a plan. An exception in any callback is answered
with ``ERROR_INTERNAL`` and the node goes on serving.
Lifecycle: configure loads the initial ``checkpoint`` ('' = the shipped pre-trained model; a shipped model's file name; a path);
the services answer while active.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import torch
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from f2p_interfaces.msg import ModelInfo as ModelInfoMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_interfaces.srv import FetchModel, PlanTask, RollbackModel, SwapModel
from f2p_common.commands import CommandRefused, CommandVerifier
from f2p_common.interfaces import ModelInfo
from f2p_common.model_transfer import ModelCache, TransferError, check_sha256
from f2p_common.keys import SignatureError
from f2p_common.resources import f2p_home
from f2p_planner.model_slot import AdmissionPolicy, ModelSlot
from f2p_planner.planning import PlanningError, PlanningSettings, RequestLimits, plan_task
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, PointCloudError, command_auth_from_msg, literal_from_msg,
                                 model_info_from_msg, model_info_to_msg, plan_from_msg, plan_to_msg, scene_from_msg)
from f2p_ros.model_source import chunk_source
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, diagnostics, run_node
from f2p_skill_effect.checkpoint import CheckpointError, checkpoint_path

PARAMS = [
    P.Param("checkpoint", "", "checkpoint served at configure ('' = the shipped pre-trained model; a shipped "
                              "model's file name; a path)"),
    P.Param("require_signed", False, "admit only checkpoints with an Ed25519 signature by public_key"),
    P.Param("public_key", "", "PEM public key of the learner that signs checkpoints"),
    P.Param("samples", 256, "shooting samples per CEM round (a request's num_samples overrides)",
            P.at_least(2)),
    P.Param("iterations", 3, "CEM rounds after the first shooting", P.positive_or_zero),
    P.Param("max_horizon", 3, "longest plan searched without a skeleton (a request's max_horizon overrides)",
            P.at_least(1)),
    P.Param("max_skeletons", 64, "skeletons tried at most", P.at_least(1)),
    P.Param("skills", [""], "skill library searched ([''] = every skill)"),
    P.Param("seed", 0, "seed of the search (plans are repeatable)", P.positive_or_zero),
    P.Param("avoid_radius", 0.1, "a request's refused plans: normalised parameter distance around each that is "
            "not proposed again", P.positive_or_zero),
    P.Param("torch_threads", 2, "torch intra-op threads of this process", P.at_least(1)),
    P.Param("robot_id", "robot", "this robot's id, which signed commands must name"),
    P.Param("require_signed_commands", False, "refuse swap_model and rollback_model unless signed by one of "
                                              "command_keys for robot_id"),
    P.Param("command_keys", [""], "PEM public keys authorised to sign commands (the learner's .pub, operators')"),
    P.Param("command_max_age_s", 60.0, "a signed command is valid this long from its stamp (s)", P.positive),
    P.Param("model_dirs", [""], "folders swap_model may load checkpoints from, besides the initial checkpoint's "
                                "([''] = $ROS_HOME/f2p/models, the learner's default store)"),
    P.Param("model_cache", "", "folder of the models swap_model names by content and fetch_model brings "
                               "('' = $ROS_HOME/f2p/model_cache)"),
    P.Param("model_cache_keep", 5, "models the cache keeps besides the serving and previous ones", P.positive_or_zero),
    P.Param("fetch_chunk_kib", 512, "KiB asked for per fetch_model request", P.at_least(1)),
    P.Param("fetch_timeout_s", 10.0, "longest wait for one fetch_model answer (s)", P.positive),
    P.Param("admission_probe", "", "labelled probe scenes every model must score on ('' = the shipped probe)"),
    P.Param("admission_min_detection_f1", 0.8, "least detection micro F1 on the probe (0 = no floor)", P.probability),
    P.Param("admission_min_next_step_accuracy", 0.85, "least next-step accuracy on the probe (0 = no floor)",
            P.probability),
    P.Param("max_request_samples", 2048, "most shooting samples a request may ask for", P.at_least(2)),
    P.Param("max_request_horizon", 6, "longest max_horizon a request may ask for", P.at_least(1)),
    P.Param("max_skeleton_steps", 8, "most steps of a request's skeleton", P.at_least(1)),
    P.Param("max_goal_literals", 32, "most literals of a request's goal", P.at_least(1)),
    P.Param("max_refused_plans", 64, "most refused plans a request may carry", P.positive_or_zero),
    P.Param("max_concurrent_plans", 2, "plans computed at once (more: ERROR_BUSY)", P.at_least(1)),
]


def swap_error_code(exc: Exception) -> int:
    """SwapModel's error code for a refused candidate."""
    reason = getattr(exc, "reason", "not_found" if isinstance(exc, OSError) else "not_admissible")
    return {"not_found": SwapModel.Response.ERROR_NOT_FOUND, "busy": SwapModel.Response.ERROR_NOT_FOUND,
            "not_authentic": SwapModel.Response.ERROR_NOT_AUTHENTIC,
            "not_admissible": SwapModel.Response.ERROR_NOT_ADMISSIBLE,
            "too_large": SwapModel.Response.ERROR_NOT_ADMISSIBLE,
            "not_permitted": SwapModel.Response.ERROR_NOT_PERMITTED}[reason]


class PlannerNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("planner", **kwargs)
        P.declare(self, PARAMS)
        self.slot: ModelSlot | None = None
        self._latest_scene = None
        self._info_pub = self._diag = None
        self.served = self.refused = 0
        self._plan_group, self._model_group = ReentrantCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self._scene_group = MutuallyExclusiveCallbackGroup()
        self._plan_slots = threading.BoundedSemaphore(1)
        self.create_guarded_service(PlanTask, "plan_task", self._on_plan, callback_group=self._plan_group)
        self.create_guarded_service(SwapModel, "swap_model", self._on_swap, callback_group=self._model_group)
        self.create_guarded_service(RollbackModel, "rollback_model", self._on_rollback, callback_group=self._model_group)
        self._fetch = self.create_client(FetchModel, "fetch_model", callback_group=ReentrantCallbackGroup())

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            skills = tuple(s for s in v["skills"] if s)
            self.settings = PlanningSettings(int(v["samples"]), int(v["iterations"]), int(v["max_horizon"]),
                                             int(v["max_skeletons"]), skills, seed=int(v["seed"]),
                                             avoid_radius=float(v["avoid_radius"]))
            self.limits = RequestLimits(int(v["max_request_samples"]), int(v["max_request_horizon"]),
                                        int(v["max_skeleton_steps"]), int(v["max_goal_literals"]),
                                        int(v["max_refused_plans"]))
            self._plan_slots = threading.BoundedSemaphore(int(v["max_concurrent_plans"]))
            torch.set_num_threads(int(v["torch_threads"]))
            keys = [k for k in v["command_keys"] if k]
            self.commands = CommandVerifier(v["robot_id"], keys, float(v["command_max_age_s"])) if (
                v["require_signed_commands"] or keys) else None
            if v["require_signed_commands"] and self.commands is None:
                raise ValueError("require_signed_commands needs command_keys")
            self.require_commands, self.robot_id = bool(v["require_signed_commands"]), v["robot_id"]
            self.cache = ModelCache(Path(v["model_cache"]).expanduser() if v["model_cache"]
                                    else f2p_home() / "model_cache")
            self.fetch_settings = (int(v["fetch_chunk_kib"]) * 1024, float(v["fetch_timeout_s"]),
                                   int(v["model_cache_keep"]))
            dirs = tuple(Path(d).expanduser() for d in v["model_dirs"] if d) or (f2p_home() / "models",)
            dirs += (self.cache.folder,)
            self.slot = ModelSlot(checkpoint_path(v["checkpoint"]), AdmissionPolicy(
                require_signed=bool(v["require_signed"]), public_key=v["public_key"] or None, model_dirs=dirs,
                probe=Path(v["admission_probe"]) if v["admission_probe"] else None,
                min_detection_f1=float(v["admission_min_detection_f1"]),
                min_next_step_accuracy=float(v["admission_min_next_step_accuracy"])))
        except (ValueError, OSError, CheckpointError, SignatureError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        latched = qos.latched()
        pub = NO_EVENT_HANDLERS["pub"]
        self._info_pub = self.until_cleanup(self.create_lifecycle_publisher(ModelInfoMsg, "model_info", latched,
                                                                            event_callbacks=pub))
        self._diag = self.create_diagnostics_publisher()
        self._latched = latched
        self.get_logger().info(f"configured: serving model {self.slot.active().version}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.until_deactivate(self.create_subscription(SegmentedSceneMsg, "segmented_scene", self._on_scene,
                                                       self._latched, callback_group=self._scene_group,
                                                       event_callbacks=NO_EVENT_HANDLERS["sub"]))
        result = super().on_activate(state)
        self._info_pub.publish(model_info_to_msg(self.slot.active().info))
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._info_pub = self._diag = self.slot = None
        return super().on_cleanup(state)

    # --- observations ------------------------------------------------------------------
    def _on_scene(self, msg: SegmentedSceneMsg) -> None:
        self._latest_scene = msg

    # --- planning ----------------------------------------------------------------------
    def _on_plan(self, req: PlanTask.Request, resp: PlanTask.Response) -> PlanTask.Response:
        if not self.is_active:
            resp.success, resp.message = False, "planner is not active (configure and activate it first)"
            resp.error_code = PlanTask.Response.ERROR_NOT_ACTIVE
            return resp
        if not self._plan_slots.acquire(blocking=False):
            resp.success, resp.error_code = False, PlanTask.Response.ERROR_BUSY
            resp.message = "the planner is busy with its most concurrent plans (max_concurrent_plans): ask again"
            return resp
        try:
            return self._plan(req, resp)
        finally:
            self._plan_slots.release()

    def _plan(self, req: PlanTask.Request, resp: PlanTask.Response) -> PlanTask.Response:
        t0 = time.perf_counter()
        loaded = self.slot.active()                # this request finishes on this model
        resp.error_code = PlanTask.Response.ERROR_TOO_LARGE
        try:
            self.limits.check(int(req.num_samples), int(req.max_horizon), len(req.skeleton), len(req.goal),
                              len(req.refused_plans))
            resp.error_code = PlanTask.Response.ERROR_INVALID_REQUEST
            scene_msg = req.scene if req.scene.objects else self._latest_scene
            if scene_msg is None:
                raise PlanningError("the request has no scene and no segmented_scene was received yet")
            scene = scene_from_msg(scene_msg)
            index = {o: i for i, o in enumerate(scene.object_ids)}
            goal = [literal_from_msg(m, index, f"goal[{k}]") for k, m in enumerate(req.goal)]
            skeleton = [self._skeleton_step(step, index, k) for k, step in enumerate(req.skeleton)]
            refused = [plan_from_msg(m) for m in req.refused_plans]
            resp.error_code = PlanTask.Response.ERROR_NO_PLAN          # a well-formed request from here on
            settings = PlanningSettings(int(req.num_samples) or self.settings.samples, self.settings.iterations,
                                        int(req.max_horizon) or self.settings.max_horizon,
                                        self.settings.max_skeletons, self.settings.skills, seed=self.settings.seed,
                                        avoid_radius=self.settings.avoid_radius)
            result = plan_task(loaded, scene, goal, skeleton or None, settings, refused)
        except (ConversionError, PointCloudError, PlanningError, ValueError) as exc:
            self.refused += 1
            resp.success, resp.message = False, f"no plan: {exc}"
            self._diag.publish(diagnostics(self, "plan_task", ERROR, resp.message, served=self.served,
                                           refused=self.refused))
            return resp
        resp.plan = plan_to_msg(result)
        resp.success, resp.error_code = True, PlanTask.Response.ERROR_NONE
        resp.message = (f"{len(result.skeleton)} step(s), p(goal) {result.goal_probability:.3f}, model "
                        f"{loaded.version}, {time.perf_counter() - t0:.2f} s" if result.skeleton
                        else f"the goal holds already (p {result.goal_probability:.3f}): nothing to do")
        self.served += 1
        self._diag.publish(diagnostics(self, "plan_task", OK, resp.message, served=self.served, refused=self.refused,
                                       model=loaded.version))
        return resp

    @staticmethod
    def _skeleton_step(step, index: dict, k: int) -> tuple[str, int]:
        """(skill, target index) of a skeleton's SkillCall: its parameters are the planner's to choose."""
        from f2p_common.vocabulary import skill as skill_spec
        try:
            spec = skill_spec(step.skill)
        except ValueError as e:
            raise PlanningError(f"skeleton[{k}]: {e}") from None
        if len(step.target_ids) != spec.targets:
            raise PlanningError(f"skeleton[{k}]: {step.skill} takes {spec.targets} target id(s)")
        if step.target_ids[0] not in index:
            raise PlanningError(f"skeleton[{k}]: unknown object id {step.target_ids[0]!r}; known: {sorted(index)}")
        return step.skill, index[step.target_ids[0]]

    # --- models ------------------------------------------------------------------------
    def _on_swap(self, req: SwapModel.Request, resp: SwapModel.Response) -> SwapModel.Response:
        if not self.is_active:
            resp.success, resp.message = False, "planner is not active (configure and activate it first)"
            resp.error_code = SwapModel.Response.ERROR_NOT_ACTIVE
            return resp
        current = self.slot.active().info
        resp.previous = resp.active = model_info_to_msg(current)
        who = req.requested_by or "unnamed caller"
        try:
            who = self._authorise(req.auth, "swap_model", req.model.sha256, who)
        except CommandRefused as exc:                      # refused before any file is read
            resp.success, resp.error_code = False, SwapModel.Response.ERROR_NOT_AUTHORISED
            resp.message = f"refused, still serving {current.version}: {exc}"
            self._diag.publish(diagnostics(self, "swap_model", ERROR, resp.message, active=current.version,
                                           requested_by=who))
            return resp
        fetched = ""
        try:
            info = model_info_from_msg(req.model)
            if not info.uri:
                info, fetched = self._by_content(info)
            candidate = self.slot.admit(info)
        except (CheckpointError, ValueError, OSError) as exc:
            resp.success, resp.message = False, f"refused, still serving {current.version}: {exc}"
            resp.error_code = swap_error_code(exc)
            self._diag.publish(diagnostics(self, "swap_model", ERROR, resp.message, active=current.version,
                                           requested_by=who))
            return resp
        if req.dry_run:
            resp.success, resp.message = True, f"{candidate.version} would be admitted (dry run){fetched}"
            return resp
        previous, active = self.slot.swap(candidate, who)
        resp.previous, resp.active = model_info_to_msg(previous), model_info_to_msg(active)
        resp.success, resp.message = True, f"swapped {previous.version} -> {active.version}{fetched}"
        self.cache.prune({previous.sha256, active.sha256}, self.fetch_settings[2])
        self._info_pub.publish(resp.active)
        self._diag.publish(diagnostics(self, "swap_model", OK, resp.message, active=active.version, requested_by=who))
        self.get_logger().info(f"{resp.message} (requested by {who})")
        return resp

    def _by_content(self, info: ModelInfo) -> tuple[ModelInfo, str]:
        """The candidate a request names by its SHA-256 alone, from the model cache (fetched from
        ``fetch_model`` when absent; TransferError saying why not), and a note of the fetch."""
        try:
            sha = check_sha256(info.sha256)
        except ValueError as exc:
            raise TransferError(f"a model named by content needs its sha256: {exc}", "not_found") from None
        chunk_bytes, timeout, _keep = self.fetch_settings
        began = time.monotonic()
        got = self.cache.fetch(sha, chunk_source(self, self._fetch, timeout, lambda: not self.is_active), chunk_bytes)
        note = ("" if not got.fetched_bytes else
                f" (fetched {got.fetched_bytes} bytes from {self.resolve_service_name(self._fetch.srv_name)} in "
                f"{time.monotonic() - began:.1f} s{f', resumed at byte {got.resumed_from}' if got.resumed_from else ''})")
        if note:
            self.get_logger().info(f"model {sha[:16]}...{note}")
        return dataclasses.replace(info, sha256=sha, uri=got.path.as_uri(),
                                   signature=info.signature or got.info.signature), note

    def _authorise(self, auth, command: str, model_sha256: str, who: str) -> str:
        """``who`` asks, with the key that signed it; CommandRefused when commands must be signed
        and this one is not authorised (f2p_common.commands)."""
        if self.commands is None or not (self.require_commands or auth.signature):
            return who
        key = self.commands.verify(command_auth_from_msg(auth, command, self.robot_id, model_sha256), command,
                                   model_sha256)
        return f"{who} (signed by {key})"

    def _on_rollback(self, req: RollbackModel.Request, resp: RollbackModel.Response) -> RollbackModel.Response:
        if not self.is_active:
            resp.success, resp.message = False, "planner is not active (configure and activate it first)"
            resp.error_code = RollbackModel.Response.ERROR_NOT_ACTIVE
            return resp
        resp.previous = resp.active = model_info_to_msg(self.slot.active().info)
        try:
            who = self._authorise(req.auth, "rollback_model", "", req.requested_by or "rollback_model caller")
        except CommandRefused as exc:
            resp.success, resp.error_code, resp.message = False, RollbackModel.Response.ERROR_NOT_AUTHORISED, str(exc)
            self._diag.publish(diagnostics(self, "swap_model", ERROR, f"rollback refused: {exc}",
                                           requested_by=req.requested_by or "rollback_model caller"))
            return resp
        try:
            previous, active = self.slot.rollback(who)
        except CheckpointError as exc:
            resp.success, resp.message = False, str(exc)
            resp.error_code = RollbackModel.Response.ERROR_NOTHING_TO_ROLL_BACK
            return resp
        resp.previous, resp.active = model_info_to_msg(previous), model_info_to_msg(active)
        self._info_pub.publish(resp.active)
        resp.success, resp.message = True, f"rolled back {previous.version} -> {active.version}"
        self._diag.publish(diagnostics(self, "swap_model", OK, resp.message, active=active.version, requested_by=who))
        self.get_logger().info(f"{resp.message} (requested by {who})")
        return resp


def main(args=None) -> None:
    run_node(PlannerNode, args)


if __name__ == "__main__":
    main()
