"""The learner: its model store and jobs (ROS-free) and the ``learner`` node over DDS — an event
acknowledged once it is queued on disk, learned in a worker process with progress, the
deployable child signed, stored with its lineage, announced and pushed to the planner; a
sim-to-real gap and a broken event kept with the reason; a stopped job run again."""
from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from f2p_failure.events import FailureEvent, failure_signature, save_event
from f2p_interfaces.msg import LearnerProgress, ModelUpdate
from f2p_interfaces.srv import FetchModel, SubmitFailure, SwapModel
from f2p_learning.jobs import Learner, LearnerConfig
from f2p_learning.learn import LearnConfig
from f2p_learning.learner_node import LearnerNode
from f2p_learning.store import ModelStore
from f2p_common.commands import CommandVerifier
from f2p_common.model_transfer import ModelCache
from f2p_ros.conversions import (command_auth_from_msg, failure_event_to_msg, model_chunk_from_response,
                                 model_info_from_msg, stage_from_msg)
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_training.train import FineTuneRecipe
from f2p_common.weights import CheckpointError, generate_signing_key, verify_signature
from f2p_skill_effect.checkpoint import FORMAT, load_checkpoint, model_info
from support.failure_fixtures import failure_event, observed_flipped, save_tiny_checkpoint
from support.ros import WAIT_S, LifecycleClient, collector, wait_future, wait_until

JOB_S = 240.0          # one tiny job: a worker process (torch + MuJoCo imports) and seconds of learning


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("learner")

    def data(name, seed):
        generate(DatagenConfig(root / name, DatagenParams(transitions=6, shard_size=6, seed=seed,
                                                          hold_out_failure_modes=True), workers=1, progress=False))
        return root / name
    return {"root": root, "checkpoint": save_tiny_checkpoint(root / "tiny.pt"), "public": generate_signing_key(root / "key.pem"),
            "key": root / "key.pem", "replay": data("replay", 1), "regression": data("regression", 2),
            "event": failure_event()}


def tiny(setup, tmp_path, **changes) -> LearnerConfig:
    # a tolerance and floors no tiny child can miss: the gate runs, its verdict is "deployable"
    cfg = LearnerConfig(tmp_path / "queue", tmp_path / "store", setup["checkpoint"], setup["key"], learn=LearnConfig(
        replay_data=[setup["replay"]], regression_data=[setup["regression"]], regression_tolerance=1.0,
        min_detection_f1=0.0, min_next_step_accuracy=0.0,
        particles=4, svgd_steps=3, fine_tune=FineTuneRecipe(epochs=2), seed=2))
    return dataclasses.replace(cfg, **changes)


def fresh(event: FailureEvent) -> FailureEvent:
    return dataclasses.replace(event, event_id=FailureEvent.new_id())


# ---------------------------------------------------------------------------- store and jobs
def test_the_store_keeps_one_folder_per_version_and_never_another_model_under_it(setup, tmp_path):
    store = ModelStore(tmp_path / "store")
    stored = store.add(setup["checkpoint"], {"event_ids": ["e1"]}, setup["key"])
    assert stored.signed and store.versions() == [stored.version] == ["tiny"]
    assert json.loads((stored.path.parent / "lineage.json").read_text())["event_ids"] == ["e1"]
    verify_signature(FORMAT, model_info(stored.path).sha256, model_info(stored.path).signature, setup["public"])
    assert store.add(setup["checkpoint"], {"event_ids": ["e1"]}) == stored            # idempotent
    other = tmp_path / "other.pt"
    from f2p_skill_effect.checkpoint import save_checkpoint
    ck = load_checkpoint(setup["checkpoint"])
    ck.metrics = {"note": 1.0}
    save_checkpoint(other, ck)
    with pytest.raises(CheckpointError, match="already stored with other bytes"):
        store.add(other, {})
    ck.metrics = load_checkpoint(setup["checkpoint"]).metrics
    ck.training_data = {**ck.training_data, "data": ["/elsewhere/d_plus"]}     # the same model, from another job
    save_checkpoint(other, ck)
    assert store.add(other, {"event_ids": ["e2"]}) == stored
    lineage = json.loads((stored.path.parent / "lineage.json").read_text())
    assert lineage["event_ids"] == ["e1"] and lineage["also_learned_from"] == [["e2"]]
    assert store.add(other, {"event_ids": ["e2"]}) == stored and json.loads(
        (stored.path.parent / "lineage.json").read_text())["also_learned_from"] == [["e2"]]


def test_a_job_learns_signs_stores_and_moves_the_event_once(setup, tmp_path):
    learner = Learner(tiny(setup, tmp_path))
    event = fresh(setup["event"])
    assert learner.submit(event)[1] == "queued" and learner.submit(event)[1] == "already pending"
    stages = []
    result = learner.run_next(lambda _e, stage, fraction, _s: stages.append((stage, fraction)))
    assert (result.outcome, result.state, result.deployable) == ("learned", "learned", True), result.reason
    assert [s for s, _ in stages][:1] == ["queued"] and stages[-1] == ("done", 1.0)
    assert {"infer", "fine_tune", "validate", "store"} <= {s for s, _ in stages}
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions)
    child = load_checkpoint(result.model.path)
    assert result.model.signed and child.metrics["deployable"] is True and child.parent_version == "tiny"
    lineage = json.loads((result.model.path.parent / "lineage.json").read_text())
    assert lineage["event_ids"] == [event.event_id] and lineage["learn_report"]["outcome"] == "learned"
    assert learner.submit(event)[1] == "already learned" and learner.run_next() is None


def test_a_gap_and_a_broken_event_are_kept_with_the_reason(setup, tmp_path):
    learner = Learner(tiny(setup, tmp_path))
    gap = fresh(observed_flipped(setup["event"]))
    learner.submit(gap)
    r = learner.run_next()
    assert (r.outcome, r.state, r.model) == ("sim_to_real_gap", "not_learnable", None)
    broken = save_event(fresh(setup["event"]), learner.queue.folder)
    broken.write_bytes(broken.read_bytes()[:100])
    r = learner.run_next()
    assert r.state == "failed" and "does not load" in r.reason
    assert learner.queue.stats().moved == {"learned": 0, "not_deployable": 0, "not_learnable": 1, "failed": 1,
                                           "merged": 0}


def test_the_same_failure_from_another_robot_is_learned_once(setup, tmp_path):
    learner = Learner(tiny(setup, tmp_path))
    first = dataclasses.replace(fresh(setup["event"]), robot_id="r1")
    same = dataclasses.replace(fresh(setup["event"]), robot_id="r2")        # same failure, another robot
    other = dataclasses.replace(fresh(observed_flipped(setup["event"])), robot_id="r2")   # other mismatches
    assert learner.submit(first)[1] == "queued"
    path, said = learner.submit(same)
    assert said == f"merged into {first.event_id}" and path.parent.name == "merged"
    assert learner.submit(same)[1] == "already merged"                             # a resend
    assert learner.submit(other)[1] == "queued"
    assert [p.name[:-len(".f2pevent")] for p in learner.queue.pending()] == [first.event_id, other.event_id]
    index = json.loads((tmp_path / "queue" / "same_failures.json").read_text())
    assert index["merged"] == {same.event_id: first.event_id} and len(index["by_signature"]) == 2
    assert failure_signature(first) == failure_signature(same) != failure_signature(other)
    moved = dataclasses.replace(same, event_id=FailureEvent.new_id(), observation_before=[
        c + 0.3 for c in same.observation_before], segment_ids=[f"x_{k}" for k in range(len(same.segment_ids))])
    assert failure_signature(moved) == failure_signature(same)              # positions and ids are not part of it
    assert failure_signature(dataclasses.replace(same, model_version="other")) != failure_signature(same)
    separate = Learner(tiny(setup, tmp_path / "no_merge", merge_same_failures=False))
    assert separate.submit(first)[1] == separate.submit(same)[1] == "queued"


# ---------------------------------------------------------------------------- the node over DDS
class FakePlanner:
    """The robot planner's swap_model, as a test peer: records what it was asked to serve."""

    def __init__(self, node):
        self.models, self.got = [], threading.Event()
        node.create_service(SwapModel, "/swap_model", self._on)

    def _on(self, req, resp):
        self.models.append(model_info_from_msg(req.model))
        self.asked_by, self.auth = req.requested_by, req.auth
        self.got.set()
        resp.success, resp.message = True, "swapped"
        return resp


def _node(ros, setup, tmp_path, *extra: Parameter):
    cfg = tiny(setup, tmp_path)
    ros.add(LearnerNode(context=ros.context, parameter_overrides=[
        Parameter("queue_dir", value=str(cfg.queue_dir)), Parameter("store_dir", value=str(cfg.store_dir)),
        Parameter("checkpoint", value=str(cfg.checkpoint)), Parameter("signing_key", value=str(cfg.signing_key)),
        Parameter("replay_data", value=[str(setup["replay"])]), Parameter("regression_data", value=[str(setup["regression"])]),
        Parameter("regression_tolerance", value=1.0), Parameter("regression_min_detection_f1", value=0.0),
        Parameter("regression_min_next_step_accuracy", value=0.0), Parameter("particles", value=4),
        Parameter("svgd_steps", value=3),
        Parameter("epochs", value=2), Parameter("seed", value=2), *extra]))
    probe = ros.node("learner_probe")
    lc = LifecycleClient(probe, "learner")
    lc.activate()
    submit = probe.create_client(SubmitFailure, "/submit_failure")
    assert submit.wait_for_service(timeout_sec=WAIT_S)
    return probe, submit, lc


def test_node_learns_announces_and_pushes_a_signed_child(ros, setup, tmp_path):
    probe, submit, _ = _node(ros, setup, tmp_path)
    planner = FakePlanner(probe)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    updates, got_update = collector(probe, ModelUpdate, "/model_updates", latched)
    progress, _ = collector(probe, LearnerProgress, "/learner/progress", 50)
    event = fresh(setup["event"])
    resp = wait_future(submit.call_async(SubmitFailure.Request(event=failure_event_to_msg(event))))
    assert resp.accepted and resp.message == "queued" and resp.stored_uri.endswith(".f2pevent")
    assert got_update.wait(JOB_S) and planner.got.wait(WAIT_S)
    update = updates[-1]
    assert update.deployable and list(update.event_ids) == [event.event_id]
    pushed = planner.models[-1]
    assert pushed.version == update.model.version and pushed.parent_version == "tiny"
    assert pushed.uri == "" and pushed.sha256 == update.model.sha256           # by content: no learner path
    # what a robot on another machine does with it: fetch it from fetch_model into its own cache
    fetch = probe.create_client(FetchModel, "/fetch_model")
    assert fetch.wait_for_service(timeout_sec=WAIT_S)
    got = ModelCache(tmp_path / "robot_cache").fetch(pushed.sha256, lambda sha, offset, n: model_chunk_from_response(
        wait_future(fetch.call_async(FetchModel.Request(sha256=sha, offset=offset, max_bytes=n)))), 16 * 1024)
    stored = Learner(tiny(setup, tmp_path)).store.find(pushed.version)
    assert got.path.read_bytes() == stored.path.read_bytes() and got.info.signature == pushed.signature
    huge = wait_future(fetch.call_async(FetchModel.Request(sha256=pushed.sha256, max_bytes=2 ** 32 - 1)))
    assert huge.success and len(huge.data) == min(stored.path.stat().st_size, 4 << 20)     # capped by the server
    assert wait_future(fetch.call_async(FetchModel.Request(sha256="0" * 64))).error_code == \
        FetchModel.Response.ERROR_NOT_FOUND
    verify_signature(FORMAT, pushed.sha256, pushed.signature, setup["public"])          # what a require_signed robot checks
    assert planner.asked_by == f"learner: learned from failure event {event.event_id}"
    robot = CommandVerifier("robot", [setup["public"]])                 # what a require_signed_commands robot checks
    robot.verify(command_auth_from_msg(planner.auth, "swap_model", "robot", pushed.sha256), "swap_model", pushed.sha256)
    wait_until(lambda: any(m.stage == LearnerProgress.STAGE_SWAP and "swapped to" in m.status for m in progress))
    assert {"queued", "infer", "fine_tune", "done"} <= {stage_from_msg(LearnerProgress, m.stage) for m in progress}
    again = wait_future(submit.call_async(SubmitFailure.Request(event=failure_event_to_msg(event))))
    assert again.accepted and again.message == "already learned"                 # a resend: acknowledged, not relearned
    bad = failure_event_to_msg(fresh(setup["event"]))
    bad.observation_before.objects.pop()
    refused = wait_future(submit.call_async(SubmitFailure.Request(event=bad)))
    assert not refused.accepted and not refused.retry and "malformed failure event" in refused.message


def test_a_job_stopped_by_deactivation_runs_again(ros, setup, tmp_path):
    from lifecycle_msgs.msg import Transition
    probe, submit, lc = _node(ros, setup, tmp_path)
    progress, _ = collector(probe, LearnerProgress, "/learner/progress", 50)
    event = fresh(setup["event"])
    assert wait_future(submit.call_async(SubmitFailure.Request(event=failure_event_to_msg(event)))).accepted
    wait_until(lambda: any(m.stage == LearnerProgress.STAGE_INFER for m in progress), timeout=JOB_S)
    assert lc.transition(Transition.TRANSITION_DEACTIVATE)                       # mid-job
    queue = Learner(tiny(setup, tmp_path)).queue
    assert queue.where(event.event_id) == "pending"                             # kept, not lost
    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    wait_until(lambda: queue.where(event.event_id) == "learned", timeout=JOB_S)


def test_a_child_reaches_its_canary_then_the_fleet_and_a_regression_rolls_back(ros, setup, tmp_path):
    """Three real planners in namespaces /r1 /r2 /r3 (their own model caches, fetching from the
    learner's fetch_model), one learner: the child of r2's failure goes to r2 alone; r2's next
    task succeeds on it, so r1 and r3 get it; r1's first task on it fails, so r1 goes back."""
    from f2p_interfaces.msg import ModelInfo as ModelInfoMsg
    from f2p_interfaces.msg import TaskProgress
    from f2p_interfaces.srv import ApproveModel
    from f2p_planner.planner_node import PlannerNode
    probe = ros.node("fleet_probe")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    serving, progress = {}, {}
    for rid in ("r1", "r2", "r3"):
        ros.add(PlannerNode(context=ros.context, namespace=f"/{rid}", cli_args=[
            "--ros-args", "-r", "fetch_model:=/fetch_model"], parameter_overrides=[
            Parameter("checkpoint", value=str(setup["checkpoint"])), Parameter("robot_id", value=rid),
            Parameter("admission_min_detection_f1", value=0.0), Parameter("admission_min_next_step_accuracy", value=0.0),
            Parameter("model_cache", value=str(tmp_path / rid / "model_cache"))]))
        LifecycleClient(probe, f"{rid}/planner").activate()
        probe.create_subscription(ModelInfoMsg, f"/{rid}/model_info",
                                  lambda m, rid=rid: serving.__setitem__(rid, m.version), latched)
        progress[rid] = probe.create_publisher(TaskProgress, f"/{rid}/task_progress", latched)
    _probe, submit, _lc = _node(ros, setup, tmp_path, Parameter("robots", value=["r1=/r1", "r2=/r2", "r3=/r3"]))
    updates, got_update = collector(probe, ModelUpdate, "/model_updates", QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    wait_until(lambda: serving == {"r1": "tiny", "r2": "tiny", "r3": "tiny"})

    event = dataclasses.replace(fresh(setup["event"]), robot_id="r2")
    assert wait_future(submit.call_async(SubmitFailure.Request(event=failure_event_to_msg(event)))).accepted
    assert got_update.wait(JOB_S) and updates[-1].deployable
    child = updates[-1].model.version
    wait_until(lambda: serving["r2"] == child, timeout=2 * WAIT_S)                # the canary, alone
    assert serving["r1"] == serving["r3"] == "tiny"
    assert (tmp_path / "r2" / "model_cache" / f"{updates[-1].model.sha256}.pt").is_file()  # fetched by content

    def task_done(rid, success):
        progress[rid].publish(TaskProgress(stage=TaskProgress.STAGE_DONE, success=success, model_version=child,
                                           goal_id=FailureEvent.new_id()))
    task_done("r2", True)                                                        # the canary's next task succeeds
    wait_until(lambda: serving["r1"] == serving["r3"] == child, timeout=2 * WAIT_S)
    task_done("r1", False)                                                       # r1's first task on it fails
    wait_until(lambda: serving["r1"] == "tiny", timeout=2 * WAIT_S)
    assert serving["r3"] == child
    rollouts = json.loads((tmp_path / "queue" / "rollouts.json").read_text())["rollouts"]
    assert rollouts[0]["stage"] == "halted" and rollouts[0]["robots"] == {
        "r2": "succeeded", "r1": "regressed", "r3": "serving"}
    approve = probe.create_client(ApproveModel, "/approve_model")
    assert approve.wait_for_service(timeout_sec=WAIT_S)
    unknown = wait_future(approve.call_async(ApproveModel.Request(version="nope", requested_by="operator:alice")))
    assert not unknown.success and "no rollout of version 'nope'" in unknown.message
    ok = wait_future(approve.call_async(ApproveModel.Request(version=child, requested_by="operator:alice")))
    assert ok.success and list(ok.robots) == []                     # r1 regressed on it: not sent again

