"""Commands in an f2p workspace of a given ROS distro (f2p_bringup.distro): a clean environment
that keeps the ROS network and enters the workspace's env.sh; clear errors for an unknown distro
or a workspace not built. Run here against this process's own distro (the other distro's
workspace is make test-distros' business)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from f2p_bringup.distro import DistroError, command_in_distro, current_distro, workspace


def test_a_command_runs_in_the_distro_workspace_from_a_clean_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("F2P_UNRELATED", "must not leak")          # an unrelated variable of this process
    monkeypatch.setenv("PYTHONPATH", "/nowhere")                   # nor this process's module paths
    distro = current_distro()
    probe = ("import json, os, rclpy, importlib.metadata as md; "
             "print(json.dumps({k: os.environ.get(k) for k in ('ROS_DISTRO', 'ROS_DOMAIN_ID', "
             "'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_HOME', 'F2P_UNRELATED', 'VIRTUAL_ENV')} | "
             "{'rclpy': md.version('ros-' + os.environ['ROS_DISTRO'] + '-rclpy')}))")
    cmd, env = command_in_distro(distro, ["python", "-c", probe], {"ROS_HOME": str(tmp_path)})
    assert "F2P_UNRELATED" not in env and "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    venv, _install = workspace(distro)
    assert seen["ROS_DISTRO"] == distro and seen["rclpy"]
    assert seen["ROS_DOMAIN_ID"] == os.environ["ROS_DOMAIN_ID"] and seen["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert seen["ROS_HOME"] == str(tmp_path) and seen["F2P_UNRELATED"] is None
    assert os.path.realpath(seen["VIRTUAL_ENV"]) == os.path.realpath(venv)


def test_an_unknown_distro_or_a_workspace_not_built_is_a_clear_error(tmp_path):
    with pytest.raises(DistroError, match="unknown ROS distro 'humble'; f2p is built for kilted, jazzy"):
        command_in_distro("humble", ["true"])
    with pytest.raises(DistroError, match="F2P_ROS_DISTRO=jazzy make setup"):
        workspace("jazzy", tmp_path)
    with pytest.raises(DistroError, match="F2P_ROS_DISTRO=kilted F2P_TORCH=cpu make setup"):
        workspace("kilted", tmp_path, torch="cpu")                 # the robot's CPU-only workspace
    with pytest.raises(DistroError, match="the CPU-only one is Kilted's"):
        command_in_distro("jazzy", ["true"], torch="cpu")
