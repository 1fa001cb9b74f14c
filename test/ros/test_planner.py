"""The planner: checkpoint signatures, model governance (admit / swap / rollback), planning from
a perceived scene (ROS-free), and the ``planner`` lifecycle node over DDS — PlanTask, SwapModel,
rollback, ModelInfo; bad requests and bad checkpoints refused while the node keeps serving; no
plan fails while models are swapped under it."""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from f2p_common.interfaces import OrientedBox, SegmentedObject, SegmentedScene
from f2p_interfaces.msg import ModelInfo as ModelInfoMsg
from f2p_interfaces.msg import Relation, SkillCall
from f2p_interfaces.srv import PlanTask, RollbackModel, SwapModel
from f2p_perception.segmentation import LabelledCloudSegmenter, SensorFrame
from f2p_planner.model_slot import AdmissionPolicy, ModelSlot, path_of
from f2p_planner.planner_node import PlannerNode
from f2p_planner.planning import PlanningError, PlanningSettings, placement_miss, plan_task
from f2p_ros.conversions import model_info_from_msg, model_info_to_msg, plan_from_msg, plan_to_msg, scene_to_msg
from f2p_sim.config import load_world_config
from f2p_sim.robot import SimRobot
from f2p_common.files import file_sha256
from f2p_common.weights import CheckpointError, generate_signing_key, verify_signature
from f2p_skill_effect.checkpoint import FORMAT, Checkpoint, model_info, save_checkpoint, shipped_model, sign_checkpoint
from support.failure_fixtures import TINY_CONFIG, save_tiny_checkpoint, tiny_model
from support.ros import WAIT_S, LifecycleClient, collector, wait_future

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
FAST = PlanningSettings(samples=32, iterations=1)
#: The tiny random-weight test models cannot reach the admission probe's quality floors: off
#: here (finiteness is still checked); test/security checks the floors themselves.
TINY = AdmissionPolicy(min_detection_f1=0.0, min_next_step_accuracy=0.0)
TINY_PARAMS = {"admission_min_detection_f1": 0.0, "admission_min_next_step_accuracy": 0.0}


@pytest.fixture(scope="module")
def transport():
    """Transport-3 as perception sees it, and the task's goal over its ids."""
    robot = SimRobot(load_world_config())
    info = robot.reset_task("transport", 3, 1000)
    scene = SegmentedScene(LabelledCloudSegmenter().segment(SensorFrame(robot.camera_cloud())), "base_link", 7, "camera")
    index = {o: i for i, o in enumerate(scene.object_ids)}
    goal = [(p, index[s], None if o is None else index[o]) for p, s, o in info.goal]
    return scene, goal, info


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A key pair, two tiny checkpoints (v1, v2: different weights), v2 signed."""
    root = tmp_path_factory.mktemp("models")
    pub = generate_signing_key(root / "key.pem")
    v1 = save_tiny_checkpoint(root / "v1.pt")
    m = tiny_model()
    sd = {k: v + 0.01 if v.is_floating_point() else v for k, v in m.state_dict().items()}
    v2 = root / "v2.pt"
    save_checkpoint(v2, Checkpoint(TINY_CONFIG, sd, "tiny-v2", parent_version="tiny", training_data={"points_per_object": 32},
                                   metrics={"deployable": True}))
    sign_checkpoint(v2, root / "key.pem")
    provisional = root / "provisional.pt"                     # a child the regression gate never passed
    save_checkpoint(provisional, Checkpoint(TINY_CONFIG, sd, "tiny-v3", parent_version="tiny",
                                            training_data={"points_per_object": 32}, metrics={"deployable": False}))
    other_pub = generate_signing_key(root / "other.pem")
    return {"root": root, "public": pub, "other_public": other_pub, "v1": v1, "v2": v2, "provisional": provisional}


# ---------------------------------------------------------------------------- signatures
def test_sign_and_verify(models):
    info = model_info(models["v2"])
    assert len(info.signature) == 128
    verify_signature(FORMAT, info.sha256, info.signature, models["public"])
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_signature(FORMAT, info.sha256, info.signature, models["other_public"])
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_signature(FORMAT, "0" * 64, info.signature, models["public"])
    with pytest.raises(CheckpointError, match="not signed"):
        verify_signature(FORMAT, info.sha256, "", models["public"])
    with pytest.raises(FileExistsError):
        generate_signing_key(models["root"] / "key.pem")
    assert oct((models["root"] / "key.pem").stat().st_mode & 0o777) == "0o600"


# ---------------------------------------------------------------------------- model governance
def test_slot_refuses_a_child_the_regression_gate_did_not_pass(models):
    slot = ModelSlot(models["v1"], TINY)
    with pytest.raises(CheckpointError, match="regression gate did not pass"):
        slot.admit(model_info(models["provisional"]))
    assert slot.active().version == "tiny"


def test_slot_admits_swaps_and_rolls_back(models):
    slot = ModelSlot(models["v1"], TINY)
    assert slot.active().version == "tiny"
    previous, active = slot.swap(slot.admit(model_info(models["v2"])), "operator:alice")
    assert (previous.version, active.version) == ("tiny", "tiny-v2")
    assert slot.rollback("operator:bob")[1].version == "tiny" and slot.active().version == "tiny"
    assert [(h["event"], h.get("requested_by")) for h in slot.history] == [
        ("initial", None), ("swap", "operator:alice"), ("rollback", "operator:bob")]
    with pytest.raises(CheckpointError, match="no previous model"):
        ModelSlot(models["v1"], TINY).rollback()
    with pytest.raises(CheckpointError, match="no previous model"):             # once: never flips back
        slot.rollback("operator:bob")


@pytest.mark.parametrize("case, signed, pattern", [
    ("wrong_sha", True, "the request names"),
    ("missing", True, "no such checkpoint file"),
    ("remote", True, "only local files"),
    ("unsigned", True, "not signed"),
    ("other_key", True, "bad signature"),
    ("corrupt", False, "does not match|not a readable"),
    ("unknown_arch", False, "another architecture than the model serving"),
])
def test_slot_refuses_bad_candidates_and_keeps_serving(models, tmp_path, case, signed, pattern):
    slot = ModelSlot(models["v2"], dataclasses.replace(TINY, require_signed=signed, model_dirs=(tmp_path,),
                                                       public_key=models["public"] if signed else None))
    info = model_info(models["v2"])
    if case == "wrong_sha":
        info = dataclasses.replace(info, sha256="ab" * 32)
    elif case == "missing":
        info = dataclasses.replace(info, uri=str(tmp_path / "gone.pt"))
    elif case == "remote":
        info = dataclasses.replace(info, uri="https://example.org/model.pt")
    elif case == "unsigned":
        info = dataclasses.replace(model_info(models["v1"]), signature="")
    elif case == "other_key":
        copy = tmp_path / "v1.pt"
        copy.write_bytes(models["v1"].read_bytes())
        (tmp_path / "v1.pt.sha256").write_text(models["v1"].with_name("v1.pt.sha256").read_text())
        sign_checkpoint(copy, models["root"] / "other.pem")
        info = model_info(copy)
    elif case == "corrupt":                      # truncated after its sidecar was written
        bad = tmp_path / "v2.pt"
        bad.write_bytes(models["v2"].read_bytes()[:-100])
        (tmp_path / "v2.pt.sha256").write_text(models["v2"].with_name("v2.pt.sha256").read_text())
        info = dataclasses.replace(info, uri=str(bad), sha256=file_sha256(bad))
    elif case == "unknown_arch":
        odd = tmp_path / "odd.pt"
        save_checkpoint(odd, Checkpoint(dataclasses.replace(TINY_CONFIG, arch="points3plans"),
                                        tiny_model().state_dict(), "odd"))
        info = dataclasses.replace(info, uri=str(odd), sha256=file_sha256(odd))
    with pytest.raises(CheckpointError, match=pattern):
        slot.admit(info)
    assert slot.active().version == "tiny-v2"


def test_path_of_reads_paths_and_file_uris(tmp_path):
    assert path_of(str(tmp_path / "a b.pt")) == tmp_path / "a b.pt"
    assert path_of((tmp_path / "a b.pt").as_uri()) == tmp_path / "a b.pt"


# ---------------------------------------------------------------------------- planning
def test_plan_task_acts_on_what_the_goal_still_needs(transport):
    scene, goal, info = transport
    slot = ModelSlot(shipped_model("skill_effect_pretrained.pt"))
    plan = plan_task(slot.active(), scene, goal, None, FAST)
    assert [scene.object_ids[t] for _, t in plan.skeleton] == ["bin_2"]        # the items are inside already
    assert plan.object_ids == scene.object_ids and plan.model_version == slot.active().version
    assert plan.step_relations[0]["binary"].shape == (5, 5, 9) and 0 <= plan.goal_probability <= 1
    done = plan_task(slot.active(), scene, goal[:2], None, FAST)               # items inside: holds already
    assert done.skeleton == [] and done.goal_probability > 0.5
    # the bin is put down with its centre well inside a table, not over the gap or an edge
    assert float(placement_miss(scene)(plan.skeleton, torch.tensor([plan.parameters], dtype=torch.float32))[0]) == 0.0
    fixed = plan_task(slot.active(), scene, goal, [("pick_place", 2)], FAST)
    assert fixed.skeleton == [("pick_place", 2)]
    # a verifier refused the plan: the next search keeps away from it; refusing the whole box leaves none
    other = plan_task(slot.active(), scene, goal, None, FAST, [plan])
    assert other.skeleton == plan.skeleton and not np.allclose(other.parameters, plan.parameters)
    with pytest.raises(PlanningError, match="every plan found lies within"):
        plan_task(slot.active(), scene, goal, None, dataclasses.replace(FAST, avoid_radius=10.0, skills=("pick_place",)), [plan])


def test_placement_miss_measures_how_far_a_put_down_centre_is_from_a_stable_spot():
    """Two tables with a 16 cm gap, a 20 cm bin holding an item on the first: the bin's centre
    moved into the gap, to 1 cm inside the far table's edge, or well inside it (stable: 5 + 3 cm
    inside)."""
    def seg(oid, label, lo, hi):
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        return SegmentedObject(oid, label, np.stack([lo, hi]).astype(np.float32),
                               box=OrientedBox(0.5 * (lo + hi), np.array([0.0, 0.0, 0.0, 1.0]), hi - lo))
    scene = SegmentedScene([seg("table_0", "table", (0.3, -0.57, 0.0), (0.8, -0.07, 0.45)),
                            seg("table_1", "table", (0.3, 0.09, 0.0), (0.8, 0.59, 0.45)),
                            seg("bin_2", "bin", (0.45, -0.42, 0.45), (0.65, -0.22, 0.55)),
                            seg("cuboid_3", "cuboid", (0.53, -0.34, 0.46), (0.57, -0.30, 0.52))])
    miss = placement_miss(scene)
    a = torch.tensor([[[0.0, 0.33, 0.1]], [[0.0, 0.42, 0.1]], [[0.0, 0.6, 0.1]], [[0.0, 0.0, 0.1]]])
    got = miss([("pick_place", 2)], a).numpy()
    assert got[0] == pytest.approx(0.08 + 0.09 - 0.01, abs=1e-5)           # centre at y 0.01: over the gap
    assert got[1] == pytest.approx(0.07, abs=1e-5)                          # 1 cm inside the edge: 7 cm short
    assert got[2] == 0.0 and got[3] == 0.0                                  # well inside either table
    # the item it holds is no support for the bin; an item put into the bin is supported by it
    assert float(miss([("pick_place", 2)], torch.tensor([[[0.0, 0.0, 0.0]]]))[0]) == 0.0
    assert float(miss([("pick_place", 3)], torch.tensor([[[0.0, 0.01, 0.0]]]))[0]) == 0.0


@pytest.mark.parametrize("change, pattern", [
    (lambda s, g: (s, [("inside", 9, 1)], None), "names object 9"),
    (lambda s, g: (s, [("flying", 0, None)], None), "unknown relation predicate"),
    (lambda s, g: (s, [], None), "goal is empty"),
    (lambda s, g: (SegmentedScene([]), g, None), "no objects"),
    (lambda s, g: (s, g, [("throw", 2)]), "unknown skill 'throw'"),
    # perception split the scene into more segments than the model takes (e.g. clutter): refused, named
    (lambda s, g: (SegmentedScene([dataclasses.replace(o, id=f"{o.id}_{k}") for k in range(4) for o in s.objects]),
                   g, None), "20 objects exceed the model's 16"),
])
def test_plan_task_refuses_bad_requests(transport, change, pattern):
    scene, goal, _ = transport
    slot = ModelSlot(shipped_model("skill_effect_pretrained.pt"))
    with pytest.raises(PlanningError, match=pattern):
        plan_task(slot.active(), *change(scene, goal), FAST)


# ---------------------------------------------------------------------------- the node over DDS
def _planner(ros, **params):
    params = {"samples": 32, "iterations": 1, "torch_threads": 1, **params}
    node = ros.add(PlannerNode(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()]))
    probe = ros.node("planner_probe")
    LifecycleClient(probe, "planner").activate()
    clients = {name: probe.create_client(t, f"/{name}") for name, t in
               (("plan_task", PlanTask), ("swap_model", SwapModel), ("rollback_model", RollbackModel))}
    for c in clients.values():
        assert c.wait_for_service(timeout_sec=WAIT_S)
    return node, probe, clients


def _plan_request(scene, goal_msgs, skeleton=()):
    return PlanTask.Request(scene=scene_to_msg(scene), goal=list(goal_msgs), skeleton=list(skeleton))


def _goal_msgs(info):
    return [Relation(predicate=p, subject_id=s, object_id=o or "", probability=1.0) for p, s, o in info.goal]


def test_node_plans_publishes_model_info_and_refuses_bad_requests(ros, transport):
    scene, _, info = transport
    node, probe, c = _planner(ros)
    infos, got = collector(probe, ModelInfoMsg, "/model_info", LATCHED)
    assert got.wait(WAIT_S) and infos[-1].version == "ae063623659bb4aa"
    resp = wait_future(c["plan_task"].call_async(_plan_request(scene, _goal_msgs(info))))
    assert resp.success and resp.error_code == PlanTask.Response.ERROR_NONE, resp.message
    plan = plan_from_msg(resp.plan)
    assert [plan.object_ids[t] for _, t in plan.skeleton] == ["bin_2"] and plan.model_version == "ae063623659bb4aa"
    bad_goal = [Relation(predicate="inside", subject_id="mug_9", object_id="bin_2")]
    for req, pattern in ((_plan_request(scene, bad_goal), "unknown object id 'mug_9'"),
                         (_plan_request(scene, [Relation(predicate="flying", subject_id="bin_2")]), "unknown relation"),
                         (PlanTask.Request(goal=_goal_msgs(info)), "no segmented_scene was received"),
                         (_plan_request(scene, _goal_msgs(info), [SkillCall(skill="throw", target_ids=["bin_2"])]),
                          "unknown skill 'throw'")):
        resp = wait_future(c["plan_task"].call_async(req))
        assert not resp.success and pattern in resp.message, resp.message
        assert resp.error_code == PlanTask.Response.ERROR_INVALID_REQUEST
    # a skeleton's parameters are the planner's to choose: NaN there is ignored
    nan_step = SkillCall(skill="pick_place", target_ids=["bin_2"], parameters=[float("nan")] * 3)
    assert wait_future(c["plan_task"].call_async(_plan_request(scene, _goal_msgs(info), [nan_step]))).success
    # asking again for the same scene with the plans a verifier refused: the search proposes none
    # of them nor one near them (normalised distance >= avoid_radius 0.1); unknown ids are refused
    refused = []
    for _ in range(2):
        req = _plan_request(scene, _goal_msgs(info))
        req.refused_plans = list(refused)
        resp = wait_future(c["plan_task"].call_async(req))
        assert resp.success, resp.message
        again = plan_from_msg(resp.plan)
        assert again.skeleton == plan.skeleton
        for r in refused:
            d = (np.asarray(again.parameters[0]) - plan_from_msg(r).parameters[0]) / np.array([1.6, 1.6, 0.8])
            assert np.linalg.norm(d) >= 0.1, (again.parameters, plan_from_msg(r).parameters)
        refused.append(resp.plan)
    req = _plan_request(scene, _goal_msgs(info))
    foreign = plan_from_msg(resp.plan)                               # a plan for another scene
    req.refused_plans = [plan_to_msg(dataclasses.replace(foreign, object_ids=[f"mug_{k}" for k in
                                                                              range(len(foreign.object_ids))]))]
    resp = wait_future(c["plan_task"].call_async(req))
    assert not resp.success and "refused plan 0 names object" in resp.message, resp.message


def test_require_signed_refuses_an_unsigned_initial_model(ros, models):
    from lifecycle_msgs.msg import Transition
    ros.add(PlannerNode(context=ros.context, parameter_overrides=[
        *[Parameter(k, value=v) for k, v in TINY_PARAMS.items()],
        Parameter("checkpoint", value=str(models["v1"])), Parameter("require_signed", value=True),
        Parameter("public_key", value=str(models["public"]))]))
    lc = LifecycleClient(ros.node("planner_probe"), "planner")
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)


def test_swaps_under_continuous_planning_never_fail_a_request(ros, transport, models, tmp_path):
    scene, _, info = transport
    _, probe, c = _planner(ros, checkpoint=str(models["v2"]), require_signed=True, public_key=str(models["public"]),
                           model_dirs=[str(tmp_path)], **TINY_PARAMS)
    infos, _ = collector(probe, ModelInfoMsg, "/model_info", LATCHED)
    v1 = tmp_path / "v1.pt"                                         # a signed copy of v1
    v1.write_bytes(models["v1"].read_bytes())
    (tmp_path / "v1.pt.sha256").write_text(models["v1"].with_name("v1.pt.sha256").read_text())
    sign_checkpoint(v1, models["root"] / "key.pem")
    signed = {"tiny": model_info_to_msg(model_info(v1)), "tiny-v2": model_info_to_msg(model_info(models["v2"]))}
    # refused candidates leave the active model serving
    unsigned = model_info_to_msg(model_info(models["v1"]))
    refused = wait_future(c["swap_model"].call_async(SwapModel.Request(model=unsigned)))
    assert not refused.success and "not signed" in refused.message and refused.active.version == "tiny-v2"
    assert refused.error_code == SwapModel.Response.ERROR_NOT_AUTHENTIC
    tampered = model_info_to_msg(dataclasses.replace(model_info(models["v2"]), sha256="cd" * 32))
    resp = wait_future(c["swap_model"].call_async(SwapModel.Request(model=tampered)))
    assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_AUTHENTIC
    missing = model_info_to_msg(dataclasses.replace(model_info(models["v2"]), uri=str(tmp_path / "gone.pt")))
    resp = wait_future(c["swap_model"].call_async(SwapModel.Request(model=missing)))
    assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_FOUND, resp.message
    dry = wait_future(c["swap_model"].call_async(SwapModel.Request(model=signed["tiny"], dry_run=True)))
    assert dry.success and "dry run" in dry.message
    nothing = wait_future(c["rollback_model"].call_async(RollbackModel.Request()))
    assert nothing.message == "no previous model to roll back to"
    assert nothing.error_code == RollbackModel.Response.ERROR_NOTHING_TO_ROLL_BACK

    request = _plan_request(scene, _goal_msgs(info), [SkillCall(skill="pick_place", target_ids=["bin_2"])])
    results, stop, planned = [], threading.Event(), threading.Semaphore(0)

    def keep_planning():
        while not stop.is_set():
            resp = wait_future(c["plan_task"].call_async(request))
            results.append((resp.success, resp.message, resp.plan.model_version))
            planned.release()

    worker = threading.Thread(target=keep_planning)
    worker.start()
    swaps = 0
    try:
        deadline = time.monotonic() + 4 * WAIT_S
        while (len(results) < 6 or swaps < 4) and time.monotonic() < deadline:
            assert planned.acquire(timeout=WAIT_S), "planning stalled"      # one swap per finished plan
            target = "tiny" if swaps % 2 == 0 else "tiny-v2"
            swap = wait_future(c["swap_model"].call_async(SwapModel.Request(model=signed[target])))
            assert swap.success and model_info_from_msg(swap.active).version == target, swap.message
            swaps += 1
        back = wait_future(c["rollback_model"].call_async(RollbackModel.Request(requested_by="operator:test")))
        assert back.success and back.message.startswith("rolled back")
    finally:
        stop.set()
        worker.join(timeout=3 * WAIT_S)
    assert len(results) >= 6 and swaps >= 4
    assert all(ok for ok, *_ in results), [m for ok, m, _ in results if not ok]
    assert {v for *_, v in results} == {"tiny", "tiny-v2"}              # plans ran on both, none failed
    assert infos[-1].version == model_info_from_msg(back_active(back, signed)).version


def back_active(back, signed):
    """The ModelInfo message of the model a rollback reports as active."""
    return signed[back.message.split(" -> ")[-1]]


def test_f2p_sign_command_line(tmp_path, capsys):
    from f2p_skill_effect.sign import main
    assert main(["keygen", str(tmp_path / "k.pem")]) == 0
    ckpt = save_tiny_checkpoint(tmp_path / "m.pt")
    assert main(["sign", str(ckpt), "--key", str(tmp_path / "k.pem")]) == 0
    verify_signature(FORMAT, file_sha256(ckpt), (tmp_path / "m.pt.sig").read_text().strip(), tmp_path / "k.pem.pub")
    assert main(["sign", str(ckpt), "--key", str(tmp_path / "missing.pem")]) == 2
    assert main(["keygen", str(tmp_path / "k.pem")]) == 2                      # never overwrites a key
    assert "exists; refusing to overwrite" in capsys.readouterr().err
