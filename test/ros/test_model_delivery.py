"""A model learned off-board reaches a robot that shares no disk with the learner (issue 46): the
learner and the planner as separate processes with their own ROS_HOME and model folders, DDS on
loopback. The planner is asked for a model by content (sha256, no path), fetches it from the
learner's fetch_model in chunks into its own cache, verifies it (hash, the learner's signature,
architecture, the admission probe) and only then serves it; a transfer cut by the learner's
death resumes from the bytes on the robot's disk once the learner is back."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from lifecycle_msgs.msg import Transition

from f2p_common.files import file_sha256
from f2p_common.interfaces import ModelInfo
from f2p_common.weights import generate_signing_key
from f2p_interfaces.srv import FetchModel, SwapModel
from f2p_learning.store import ModelStore
from f2p_ros.conversions import model_info_to_msg
from f2p_skill_effect.checkpoint import shipped_model, sign_checkpoint
from support.ros import WAIT_S, LifecycleClient, wait_future, wait_until

CHUNK_KIB = 4            # ~1,170 chunks for a 4.7 MB model: a cut lands mid-transfer


def _start(module: str, home, **params) -> subprocess.Popen:
    args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    return subprocess.Popen([sys.executable, "-m", module, "--ros-args", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "ROS_HOME": str(home)})


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def machines(tmp_path):
    """Two 'machines': the learner's home (its store holds a signed child) and the robot's home
    (the learner's public key, a signed copy of the pre-trained model it starts on)."""
    learner_home, robot_home = tmp_path / "learner_machine", tmp_path / "robot_machine"
    learner_home.mkdir(), robot_home.mkdir()
    public = generate_signing_key(learner_home / "key.pem")
    child = ModelStore(learner_home / "f2p" / "models").add(shipped_model("skill_effect_transport3_learned.pt"),
                                                          {"event_ids": []}, learner_home / "key.pem")
    shutil.copy(public, robot_home / "learner.pub")
    initial = robot_home / "pretrained.pt"
    shutil.copy(shipped_model("skill_effect_pretrained.pt"), initial)
    (robot_home / "pretrained.pt.sha256").write_text(f"{file_sha256(initial)}  pretrained.pt\n")
    sign_checkpoint(initial, learner_home / "key.pem")
    return learner_home, robot_home, child


def test_a_model_reaches_a_robot_that_shares_no_disk_and_a_cut_transfer_resumes(ros, machines):
    learner_home, robot_home, child = machines
    learner = _start("f2p_learning.learner_node", learner_home)
    planner = _start("f2p_planner.planner_node", robot_home, checkpoint=robot_home / "pretrained.pt",
                     require_signed="true", public_key=robot_home / "learner.pub", fetch_chunk_kib=CHUNK_KIB,
                     fetch_timeout_s=2.0)
    try:
        probe = ros.node("delivery_probe")
        LifecycleClient(probe, "learner").activate()
        LifecycleClient(probe, "planner").activate()
        swap = probe.create_client(SwapModel, "/swap_model")
        fetch = probe.create_client(FetchModel, "/fetch_model")
        assert swap.wait_for_service(timeout_sec=WAIT_S) and fetch.wait_for_service(timeout_sec=WAIT_S)
        sha = file_sha256(child.path)
        by_content = model_info_to_msg(ModelInfo(name="skill_effect", version="", sha256=sha))   # no uri, no signature

        # the learner answers for what it has, and only that
        unknown = wait_future(fetch.call_async(FetchModel.Request(sha256="ab" * 32)))
        assert unknown.error_code == FetchModel.Response.ERROR_NOT_FOUND and not unknown.data
        bad = wait_future(fetch.call_async(FetchModel.Request(sha256="../models")))
        assert bad.error_code == FetchModel.Response.ERROR_BAD_REQUEST
        resp = wait_future(swap.call_async(SwapModel.Request(
            model=model_info_to_msg(ModelInfo(name="skill_effect", version="", sha256="ab" * 32)))))
        assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_FOUND
        assert "the learner has no model with SHA-256" in resp.message

        # the learner dies mid-transfer: the swap is refused, the bytes fetched so far are kept
        cache = robot_home / "f2p" / "model_cache"
        part = cache / f"{sha}.part"
        pending = swap.call_async(SwapModel.Request(model=by_content))
        wait_until(lambda: part.is_file() and part.stat().st_size >= 64 * 1024, timeout=WAIT_S)
        learner.kill()
        learner.wait()
        resp = wait_future(pending, timeout=4 * WAIT_S)
        assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_FOUND, resp.message
        assert resp.active.version == resp.previous.version                    # still serving what it served
        kept = part.stat().st_size
        assert kept >= 64 * 1024 and "bytes kept for a later fetch" in resp.message
        assert not (cache / f"{sha}.pt").exists()                       # nothing half-written to serve

        # the learner is back: the next swap resumes where the robot stopped, verifies, serves
        learner = _start("f2p_learning.learner_node", learner_home)
        again = LifecycleClient(probe, "learner")
        again.wait_answering()
        again.activate()
        resp = wait_future(swap.call_async(SwapModel.Request(model=by_content, requested_by="test")),
                           timeout=4 * WAIT_S)
        assert resp.success, resp.message
        assert f"resumed at byte {kept}" in resp.message
        assert resp.active.version == child.version and resp.active.sha256 == sha
        assert resp.active.uri == (cache / f"{sha}.pt").as_uri()        # the robot's own copy
        assert file_sha256(cache / f"{sha}.pt") == sha and not part.exists()
        assert not str(learner_home) in resp.active.uri
    finally:
        _stop(learner)
        _stop(planner)


def test_a_robot_without_a_model_source_says_so_and_keeps_serving(ros, machines):
    _learner_home, robot_home, child = machines
    planner = _start("f2p_planner.planner_node", robot_home, checkpoint=robot_home / "pretrained.pt",
                     require_signed="true", public_key=robot_home / "learner.pub", fetch_timeout_s=1.0)
    try:
        probe = ros.node("delivery_probe")
        LifecycleClient(probe, "planner").activate()
        swap = probe.create_client(SwapModel, "/swap_model")
        assert swap.wait_for_service(timeout_sec=WAIT_S)
        resp = wait_future(swap.call_async(SwapModel.Request(model=model_info_to_msg(
            ModelInfo(name="skill_effect", version="", sha256=file_sha256(child.path))))), timeout=4 * WAIT_S)
        assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_FOUND
        assert "no model source on /fetch_model" in resp.message and resp.active.version == resp.previous.version
        malformed = wait_future(swap.call_async(SwapModel.Request(model=model_info_to_msg(
            ModelInfo(name="skill_effect", version="", sha256="not-a-digest")))))
        assert not malformed.success and "needs its sha256" in malformed.message
        lc = LifecycleClient(probe, "planner")
        assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    finally:
        _stop(planner)
