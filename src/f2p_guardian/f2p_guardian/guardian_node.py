"""``guardian`` lifecycle node: plan and execution verification (paper 002), for the task
executor and anyone's stack.

==========================  ===============================  ====================================
interface                   type                             what
==========================  ===============================  ====================================
srv ``verify_plan``         f2p_interfaces/VerifyPlan        scene + plan (+ views) -> verdict:
                                                             success / failure, category,
                                                             confidence, reasoning
srv ``verify_execution``    f2p_interfaces/VerifyExecution   step + scenes before / after
                                                             (+ views) -> verdict
pub ``/diagnostics``        diagnostic_msgs/DiagnosticArray  per call: OK, WARN (a failure
                                                             verdict) or ERROR (bad request)
==========================  ===============================  ====================================

``backend`` picks the verifier behind ``f2p_guardian.verifier.Verifier``: ``symbolic`` (the
skill library's effects on the scene's boxes; no model), ``vlm`` (the vision-language model
in ``model``: '' = the shipped small verifier, or a local folder with a full InternVL or with
LoRA adapters over ``base_model``) or ``baseline`` (the cheap image + words classifier in
``model``). A model is loaded at configure (a missing or corrupt one fails the transition with
the reason; the node stays up, unconfigured) and freed at cleanup. A request that cannot be
verified — an empty plan, a plan naming an object the scene lacks, missing or extra camera
views, images of the wrong size, an unreadable message — gets ``success: false`` and the
reason; the node keeps serving. A request larger than the ``max_*`` parameters (images, their
size, plan steps, scene objects, the task description) is refused before anything is converted.
Calls run one at a time in their own callback group (a VLM call takes up to a second).
"""
from __future__ import annotations

import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from f2p_common.interfaces import PointCloudError, SkillCall
from f2p_guardian.language import describe_goal
from f2p_guardian.taxonomy import EXECUTION, PLAN, SUCCESS, Verdict
from f2p_guardian.verifier import VERIFIERS, ExecutionQuery, PlanQuery, Verifier
from f2p_guardian.world import SceneFacts
from f2p_interfaces.msg import GuardianVerdict
from f2p_interfaces.srv import VerifyExecution, VerifyPlan
from f2p_ros import parameters as P
from f2p_ros.conversions import (ConversionError, image_from_msg, plan_from_msg, scene_from_msg,
                                 skill_call_from_msg)
from f2p_ros.nodes import ERROR, OK, WARN, ManagedNode, diagnostics, run_node

PARAMS = [
    P.Param("backend", "symbolic", "verifier: 'symbolic' (skill effects on the scene's boxes), 'vlm' (the "
                                   "vision-language model) or 'baseline' (image + words classifier)",
            P.one_of(*VERIFIERS)),
    P.Param("model", "", "model folder of the vlm / baseline backend ('' = the shipped small verifier)"),
    P.Param("base_model", "", "for LoRA adapters in 'model': the pre-trained model's folder ('' = the adapters' "
                              "own record)"),
    P.Param("strategy", "", "CoT strategy of the vlm backend: vanilla, thinking or dropout ('' = the model's own)",
            P.one_of("", "vanilla", "thinking", "dropout")),
    P.Param("max_images", 8, "images a request may carry (per scene)", P.at_least(1)),
    P.Param("max_image_mb", 32.0, "MiB one image may have", P.positive),
    P.Param("max_plan_steps", 16, "steps of a plan to verify", P.at_least(1)),
    P.Param("max_objects", 64, "objects of a scene", P.at_least(1)),
    P.Param("max_text_chars", 4096, "characters of a task description", P.at_least(1)),
]


def request_bounds(v: dict, req) -> None:
    """ValueError naming what a VerifyPlan / VerifyExecution request has too much of (its
    ``max_*`` parameters): checked before anything is converted (issue 43: bounded requests)."""
    over = []
    if len(req.task_description) > v["max_text_chars"]:
        over.append(f"task description of {len(req.task_description)} characters > {v['max_text_chars']}")
    for name in ("images", "images_before", "images_after"):
        images = getattr(req, name, None)
        if images is None:
            continue
        if len(images) > v["max_images"]:
            over.append(f"{len(images)} {name} > {v['max_images']}")
        big = max((len(m.data) for m in images), default=0)
        if big > v["max_image_mb"] * 2 ** 20:
            over.append(f"an image of {big / 2 ** 20:.1f} MiB in {name} > {v['max_image_mb']:g} MiB")
    for name in ("scene", "before", "after"):
        scene = getattr(req, name, None)
        if scene is not None and len(scene.objects) > v["max_objects"]:
            over.append(f"{len(scene.objects)} objects in {name} > {v['max_objects']}")
    plan = getattr(req, "plan", None)
    if plan is not None and len(plan.steps) > v["max_plan_steps"]:
        over.append(f"a plan of {len(plan.steps)} steps > {v['max_plan_steps']}")
    if over:
        raise ValueError(f"the request is too large: {', '.join(over)}")


def backend_options(v: dict) -> dict:
    """The options of the chosen verifier from the node's parameter values."""
    if v["backend"] == "vlm":
        return {"model": v["model"], "base_model": v["base_model"], "strategy": v["strategy"]}
    return {"model": v["model"]} if v["backend"] == "baseline" else {}


def verdict_to_msg(v: Verdict, stamp) -> GuardianVerdict:
    msg = GuardianVerdict(stage=GuardianVerdict.STAGE_PLAN if v.mode == PLAN else GuardianVerdict.STAGE_EXECUTION,
                          verdict=GuardianVerdict.VERDICT_SUCCESS if v.success else GuardianVerdict.VERDICT_FAILURE,
                          category=v.category, confidence=float(v.confidence), reasoning=v.reasoning)
    msg.header.stamp = stamp
    return msg


def plan_query(req: VerifyPlan.Request) -> PlanQuery:
    """The verification query of a VerifyPlan request; ValueError (or ConversionError) on bad input."""
    scene = scene_from_msg(req.scene)
    plan = plan_from_msg(req.plan)
    ids = plan.object_ids
    calls = [SkillCall(name, (ids[t],), tuple(a)) for (name, t), a in zip(plan.skeleton, plan.parameters)]
    goal = [(lit[0], ids[lit[1]], None if lit[2] is None else ids[lit[2]]) for lit in plan.goal]
    instruction = req.task_description or (describe_goal(goal) if goal else "")
    return PlanQuery(instruction, calls, SceneFacts.from_scene(scene), goal, [image_from_msg(m) for m in req.images])


def execution_query(req: VerifyExecution.Request) -> ExecutionQuery:
    before, after = scene_from_msg(req.before), scene_from_msg(req.after)
    if sorted(before.object_ids) != sorted(after.object_ids):
        raise ValueError(f"the scenes before and after differ in objects: {before.object_ids} vs {after.object_ids}")
    after = after.reordered(before.object_ids)
    return ExecutionQuery(req.task_description, skill_call_from_msg(req.step.skill), SceneFacts.from_scene(before),
                          SceneFacts.from_scene(after), [image_from_msg(m) for m in req.images_before],
                          [image_from_msg(m) for m in req.images_after])


class GuardianNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("guardian", **kwargs)
        P.declare(self, PARAMS)
        self.verifier: Verifier | None = None
        self._diag = None
        self.calls = self.refused = 0
        group = MutuallyExclusiveCallbackGroup()
        self._plan_srv = self.create_guarded_service(VerifyPlan, "verify_plan", self._on_plan, callback_group=group)
        self._exec_srv = self.create_guarded_service(VerifyExecution, "verify_execution", self._on_execution,
                                             callback_group=group)

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.v = v = P.load(self, PARAMS)
            self.verifier = VERIFIERS.make(v["backend"], **backend_options(v))
        except (ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._diag = self.create_diagnostics_publisher()
        version = getattr(self.verifier, "version", "")
        self.get_logger().info(f"configured: {self.verifier.name} verifier" + (f" {version}" if version else ""))
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._diag = self.verifier = None
        return super().on_cleanup(state)

    # --- services --------------------------------------------------------------------
    def _on_plan(self, req: VerifyPlan.Request, resp: VerifyPlan.Response) -> VerifyPlan.Response:
        return self._serve(PLAN, lambda: request_bounds(self.v, req) or self.verifier.verify_plan(plan_query(req)),
                           resp)

    def _on_execution(self, req: VerifyExecution.Request, resp: VerifyExecution.Response) -> VerifyExecution.Response:
        return self._serve(EXECUTION, lambda: request_bounds(self.v, req) or self.verifier.verify_execution(
            execution_query(req)), resp)

    def _serve(self, mode: str, verify, resp):
        t0 = time.perf_counter()
        stamp = self.get_clock().now().to_msg()
        resp.verdict.stage = GuardianVerdict.STAGE_PLAN if mode == PLAN else GuardianVerdict.STAGE_EXECUTION
        resp.verdict.header.stamp = stamp
        if not self.is_active or self.verifier is None:
            resp.success, resp.message = False, "guardian is not active"
            resp.error_code = resp.ERROR_NOT_ACTIVE
            return resp
        self.calls += 1
        try:
            verdict = verify()
        except Exception as exc:                  # noqa: BLE001  an error reply, never a dead service
            # QueryError (a ValueError) and the conversions: the request is malformed; anything
            # else is the verifier's own failure
            bad_request = isinstance(exc, (ValueError, ConversionError, PointCloudError))
            self.refused += 1
            resp.success, resp.message = False, f"cannot verify this {mode}: {exc}"
            resp.error_code = resp.ERROR_INVALID_REQUEST if bad_request else resp.ERROR_VERIFIER_FAILED
            resp.verdict.verdict = GuardianVerdict.VERDICT_UNCERTAIN
            self.get_logger().warning(resp.message, throttle_duration_sec=2.0)
            self._diag.publish(diagnostics(self, mode, ERROR, resp.message, calls=self.calls, refused=self.refused))
            return resp
        resp.success, resp.message = True, f"{verdict.category} ({verdict.confidence:.2f})"
        resp.verdict = verdict_to_msg(verdict, stamp)
        self._diag.publish(diagnostics(
            self, mode, OK if verdict.category == SUCCESS else WARN,
            f"{verdict.category} in {1000 * (time.perf_counter() - t0):.0f} ms", calls=self.calls,
            refused=self.refused, backend=self.verifier.name))
        return resp


def main(args=None) -> None:
    run_node(GuardianNode, args)


if __name__ == "__main__":
    main()
