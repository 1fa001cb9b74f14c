"""The ``guardian`` lifecycle node over DDS: VerifyPlan and VerifyExecution answered by the
symbolic verifier and by a small vision-language model; bad requests and a corrupt model get a
clear error while the node keeps serving."""
from __future__ import annotations

import itertools

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from rclpy.parameter import Parameter

from f2p_common.interfaces import OrientedBox, Plan, SegmentedObject, SegmentedScene
from f2p_guardian.guardian_node import GuardianNode
from f2p_interfaces.msg import GuardianVerdict, PlanStep
from f2p_interfaces.srv import VerifyExecution, VerifyPlan
from f2p_ros.conversions import image_to_msg, plan_to_msg, scene_to_msg, skill_call_to_msg
from f2p_common.interfaces import SkillCall
from support.ros import WAIT_S, LifecycleClient, collector, wait_future

BOXES = {"table_a": ("table", (0.30, -0.57, 0.0), (0.80, -0.07, 0.45)),
         "table_b": ("table", (0.30, 0.09, 0.0), (0.80, 0.59, 0.45)),
         "bin": ("bin", (0.45, -0.42, 0.45), (0.65, -0.22, 0.55)),
         "item_0": ("cuboid", (0.50, -0.35, 0.46), (0.54, -0.31, 0.52))}
IDS = list(BOXES)


def scene(**moved) -> SegmentedScene:
    objects = []
    for name, (cls, lo, hi) in BOXES.items():
        lo, hi = np.add(lo, moved.get(name, 0.0)), np.add(hi, moved.get(name, 0.0))
        corners = np.array(list(itertools.product(*zip(lo, hi))), np.float32)
        objects.append(SegmentedObject(name, cls, corners, box=OrientedBox.around(corners)))
    return SegmentedScene(objects, "base_link", 0, "test")


def plan(*steps, goal=(("inside", 3, 2), ("above", 2, 1))) -> Plan:
    n = len(IDS)
    rel = {"unary": np.zeros((n, 3), np.float32), "binary": np.zeros((n, n, 9), np.float32)}
    return Plan([(s, IDS.index(t)) for s, t, _ in steps], [list(a) for _, _, a in steps], [rel] * len(steps), 0.9,
                goal=list(goal), object_ids=list(IDS))


def step(dy=0.55) -> PlanStep:
    return PlanStep(skill=skill_call_to_msg(SkillCall("pick_place", ("bin",), (0.0, dy, 0.01))))


def _guardian(ros, **params):
    ros.add(GuardianNode(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    probe = ros.node("guardian_probe")
    lc = LifecycleClient(probe, "guardian")
    plan_client = probe.create_client(VerifyPlan, "/verify_plan")
    exec_client = probe.create_client(VerifyExecution, "/verify_execution")
    assert plan_client.wait_for_service(timeout_sec=WAIT_S) and exec_client.wait_for_service(timeout_sec=WAIT_S)
    return probe, lc, plan_client, exec_client


def test_symbolic_guardian_verifies_plans_and_steps_and_refuses_bad_requests(ros):
    probe, lc, plan_client, exec_client = _guardian(ros)
    diags, _ = collector(probe, DiagnosticArray, "/diagnostics", 10,
                         lambda m: any(s.name == "guardian: plan" for s in m.status))
    ask = lambda req: wait_future(plan_client.call_async(req))   # noqa: E731
    idle = ask(VerifyPlan.Request(scene=scene_to_msg(scene()), plan=plan_to_msg(plan())))
    assert not idle.success and idle.error_code == VerifyPlan.Response.ERROR_NOT_ACTIVE
    lc.activate()
    good = ask(VerifyPlan.Request(scene=scene_to_msg(scene()), plan=plan_to_msg(plan(("pick_place", "bin",
                                                                                       (0.0, 0.55, 0.01))))))
    assert good.success and good.verdict.verdict == GuardianVerdict.VERDICT_SUCCESS, good.message
    assert good.verdict.stage == GuardianVerdict.STAGE_PLAN and "table_b" in good.verdict.reasoning
    wrong = ask(VerifyPlan.Request(scene=scene_to_msg(scene()), plan=plan_to_msg(plan(("pick_place", "item_0",
                                                                                        (0.0, 0.55, 0.01))))))
    assert wrong.success and wrong.verdict.verdict == GuardianVerdict.VERDICT_FAILURE
    assert wrong.verdict.category == "wrong_object" and 0.0 < wrong.verdict.confidence <= 1.0
    empty = ask(VerifyPlan.Request(scene=scene_to_msg(scene()), plan=plan_to_msg(plan())))
    assert not empty.success and "empty" in empty.message
    assert empty.error_code == VerifyPlan.Response.ERROR_INVALID_REQUEST
    assert empty.verdict.verdict == GuardianVerdict.VERDICT_UNCERTAIN
    bad = plan_to_msg(plan(("pick_place", "bin", (0.0, 0.55, 0.01))))
    bad.steps[0].skill.target_ids = ["mug"]
    assert "mug" in ask(VerifyPlan.Request(scene=scene_to_msg(scene()), plan=bad)).message
    bad.steps[0].skill.target_ids, bad.steps[0].skill.skill = ["bin"], "teleport"
    assert "teleport" in ask(VerifyPlan.Request(scene=scene_to_msg(scene()), plan=bad)).message
    assert diags and any(s.level == DiagnosticStatus.ERROR for m in diags for s in m.status)

    check = lambda before, after, st=None: wait_future(exec_client.call_async(VerifyExecution.Request(   # noqa: E731
        step=st or step(), before=scene_to_msg(before), after=scene_to_msg(after))))
    moved = check(scene(), scene(bin=[0.0, 0.55, 0.0], item_0=[0.0, 0.55, 0.0]))
    assert moved.success and moved.verdict.category == "success", moved.verdict.reasoning
    assert check(scene(), scene()).verdict.category == "no_progress"
    assert check(scene(), scene(bin=[0.0, 0.2, -0.45], item_0=[0.0, 0.2, -0.45])).verdict.category == "imprecise_grasp"
    other = SegmentedScene(scene().objects[:3], "base_link", 0, "test")
    refused = check(scene(), other)
    assert not refused.success and "differ in objects" in refused.message
    unknown = PlanStep(skill=skill_call_to_msg(SkillCall("pick_place", ("mug",), (0.0, 0.5, 0.0))))
    assert "unknown object 'mug'" in check(scene(), scene(), unknown).message
    assert lc.state() == State.PRIMARY_STATE_ACTIVE                    # it kept serving through all of it


def test_vlm_guardian_answers_with_images_and_a_corrupt_model_fails_configure(ros, tmp_path):
    import torch

    from f2p_guardian.vlm import GuardianVLM, VLMConfig, build_model, train_tokenizer

    torch.manual_seed(0)
    tiny = VLMConfig(image_size=32, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2, text_hidden=32,
                     text_layers=1, text_heads=2, text_kv_heads=1, text_intermediate=64, vocab_size=300)
    tok = train_tokenizer(["Task: put the bin on table_b. Plan: pick_place(bin) Is the plan correct?"] * 4, 300)
    folder = GuardianVLM(build_model(tiny, tok), tok, views=2, image_shape=(24, 32)).save(tmp_path / "vlm")
    probe, lc, plan_client, exec_client = _guardian(ros, backend="vlm", model=str(folder))
    lc.activate()
    image = image_to_msg(np.full((24, 32, 3), 90, np.uint8), "camera")
    req = VerifyPlan.Request(task_description="put the bin on table_b", scene=scene_to_msg(scene()),
                             plan=plan_to_msg(plan(("pick_place", "bin", (0.0, 0.55, 0.01)))), images=[image, image])
    resp = wait_future(plan_client.call_async(req))
    assert resp.success and resp.verdict.verdict in (GuardianVerdict.VERDICT_SUCCESS, GuardianVerdict.VERDICT_FAILURE)
    req.images = [image]
    assert "1 camera view(s), the verifier takes 2" in wait_future(plan_client.call_async(req)).message
    req.images = [image_to_msg(np.zeros((48, 64, 3), np.uint8), "camera")] * 2
    assert "64x48" in wait_future(plan_client.call_async(req)).message
    resp = wait_future(exec_client.call_async(VerifyExecution.Request(
        step=step(), before=scene_to_msg(scene()), after=scene_to_msg(scene()), images_before=[image, image],
        images_after=[image])))
    assert not resp.success and "views after" in resp.message
    # A corrupt model: configure fails with the reason; the node stays up, unconfigured, and says so.
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    assert lc.transition(Transition.TRANSITION_DEACTIVATE) and lc.transition(Transition.TRANSITION_CLEANUP)
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert "not active" in wait_future(plan_client.call_async(req)).message


def test_route_step_retries_slips_and_records_model_errors():
    from f2p_executor.supervision import CONTINUE, FAILURE, RETRY, route_step

    mismatch = [{"predicate": "inside"}]
    assert route_step([], None) == CONTINUE and route_step(mismatch, None) == FAILURE
    assert route_step([], "success") == CONTINUE and route_step(mismatch, "success") == FAILURE
    for slip in ("no_gripper_close", "imprecise_grasp", "no_progress"):
        assert route_step(mismatch, slip) == RETRY
    for error in ("wrong_placement", "wrong_object", "instruction_mismatch"):
        assert route_step([], error) == FAILURE
