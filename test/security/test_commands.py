"""Red team, commands (issue 43): ``swap_model`` and ``rollback_model`` change what the robot runs,
so a robot with ``require_signed_commands`` takes them only when signed by an authorised key,
for this robot and this model, recently, once. ``rollback_model`` was unauthenticated and
flipped the model back and forth on every call."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest
from rclpy.parameter import Parameter

from f2p_common.commands import CommandRefused, CommandVerifier, sign_command
from f2p_common.keys import generate_key_pair, key_id
from f2p_interfaces.srv import RollbackModel, SwapModel
from f2p_planner.planner_node import PlannerNode
from f2p_ros.conversions import command_auth_to_msg, model_info_to_msg
from f2p_skill_effect.checkpoint import model_info, shipped_model
from support.ros import WAIT_S, LifecycleClient, wait_future


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return {"learner": root / "learner.pem", "learner_pub": generate_key_pair(root / "learner.pem"),
            "mallory": root / "mallory.pem", "mallory_pub": generate_key_pair(root / "mallory.pem")}


def test_a_command_verifies_only_as_signed_for_this_robot_and_model_once(keys):
    robot = CommandVerifier("stretch", [keys["learner_pub"]], max_age_s=60.0)
    ok = sign_command(keys["learner"], "swap_model", "stretch", "ab" * 32)
    assert robot.verify(ok, "swap_model", "ab" * 32) == "learner.pem.pub"
    with pytest.raises(CommandRefused, match="a replay"):
        robot.verify(ok, "swap_model", "ab" * 32)
    fresh = lambda **kw: sign_command(keys["learner"], **{"command": "swap_model", "robot": "stretch",  # noqa: E731
                                                          "model_sha256": "ab" * 32, **kw})
    cases = [
        (dataclasses.replace(fresh(), signature=""), "swap_model", "ab" * 32, "is not signed"),
        (sign_command(keys["mallory"], "swap_model", "stretch", "ab" * 32), "swap_model", "ab" * 32,
         f"key {key_id(keys['mallory_pub'])}, which this robot does not authorise"),
        (fresh(robot="ur5"), "swap_model", "ab" * 32, "not swap_model on 'stretch'"),
        (fresh(), "swap_model", "cd" * 32, "of model abababab"),                     # another model than signed
        (fresh(), "rollback_model", "", "authorises swap_model"),
        (fresh(stamp_ns=time.time_ns() - 120 * 10 ** 9), "swap_model", "ab" * 32, "valid for 60 s"),
        (fresh(stamp_ns=time.time_ns() + 120 * 10 ** 9), "swap_model", "ab" * 32, "valid for 60 s"),
        (dataclasses.replace(fresh(), nonce="other"), "swap_model", "ab" * 32, "bad signature"),
    ]
    for cmd, command, sha, pattern in cases:
        with pytest.raises(CommandRefused, match=pattern):
            robot.verify(cmd, command, sha)


@pytest.fixture
def planner(ros, keys):
    ros.add(PlannerNode(context=ros.context, parameter_overrides=[
        Parameter("samples", value=32), Parameter("iterations", value=1), Parameter("torch_threads", value=1),
        Parameter("robot_id", value="sim"), Parameter("require_signed_commands", value=True),
        Parameter("command_keys", value=[str(keys["learner_pub"])])]))
    probe = ros.node("operator")
    LifecycleClient(probe, "planner").activate()
    swap, rollback = probe.create_client(SwapModel, "/swap_model"), probe.create_client(RollbackModel, "/rollback_model")
    assert swap.wait_for_service(timeout_sec=WAIT_S) and rollback.wait_for_service(timeout_sec=WAIT_S)
    return swap, rollback


def test_the_planner_takes_only_signed_commands_and_each_once(planner, keys):
    swap, rollback = planner
    learned = model_info_to_msg(model_info(shipped_model("skill_effect_transport3_learned.pt")))
    environ = model_info_to_msg(dataclasses.replace(model_info(shipped_model()), uri="/proc/self/environ"))
    for req in (SwapModel.Request(model=learned), SwapModel.Request(model=environ),
                SwapModel.Request(model=learned, auth=command_auth_to_msg(
                    sign_command(keys["mallory"], "swap_model", "sim", learned.sha256)))):
        resp = wait_future(swap.call_async(req))            # refused before any file is read
        assert not resp.success and resp.error_code == SwapModel.Response.ERROR_NOT_AUTHORISED, resp.message
    signed = SwapModel.Request(model=learned, requested_by="learner", auth=command_auth_to_msg(
        sign_command(keys["learner"], "swap_model", "sim", learned.sha256)))
    resp = wait_future(swap.call_async(signed))
    assert resp.success and resp.active.version == learned.version, resp.message
    replay = wait_future(swap.call_async(signed))
    assert not replay.success and "a replay" in replay.message
    unsigned = wait_future(rollback.call_async(RollbackModel.Request(requested_by="mallory")))
    assert not unsigned.success and unsigned.error_code == RollbackModel.Response.ERROR_NOT_AUTHORISED
    assert unsigned.active.version == learned.version
    back = wait_future(rollback.call_async(RollbackModel.Request(auth=command_auth_to_msg(
        sign_command(keys["learner"], "rollback_model", "sim")))))
    assert back.success and back.previous.version == learned.version
    again = wait_future(rollback.call_async(RollbackModel.Request(auth=command_auth_to_msg(
        sign_command(keys["learner"], "rollback_model", "sim")))))
    assert not again.success and again.error_code == RollbackModel.Response.ERROR_NOTHING_TO_ROLL_BACK   # no flip back


def test_f2p_sign_command_prints_an_auth_the_planner_takes(keys):
    out = subprocess.run([sys.executable, "-m", "f2p_skill_effect.sign", "command", "rollback_model", "--key",
                          str(keys["learner"]), "--robot", "sim"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import yaml
    from f2p_interfaces.msg import CommandAuth
    from f2p_ros.conversions import command_auth_from_msg
    auth = yaml.safe_load(out.stdout)["auth"]
    msg = CommandAuth(key_id=auth["key_id"], nonce=auth["nonce"], signature=auth["signature"])
    msg.stamp.sec, msg.stamp.nanosec = auth["stamp"]["sec"], auth["stamp"]["nanosec"]
    robot = CommandVerifier("sim", [keys["learner_pub"]])
    robot.verify(command_auth_from_msg(msg, "rollback_model", "sim"), "rollback_model")
