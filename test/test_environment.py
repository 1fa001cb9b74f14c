"""The floor itself: env.sh enters the environment, every interface imports, traffic stays local."""
from __future__ import annotations

import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _in_env(script: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROS_", "AMENT_", "COLCON_"))}
    return subprocess.run(["bash", "-c", f". ./env.sh && {script}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_env_sh_imports_every_interface_and_stays_on_loopback():
    names = {k: sorted(p.stem for p in (ROOT / "src" / "f2p_interfaces" / k).glob(f"*.{k}")) for k in ("msg", "srv", "action")}
    imports = "; ".join(f"from f2p_interfaces.{k} import {', '.join(v)}" for k, v in names.items())
    r = _in_env(f'python -c "{imports}; import f2p_common, f2p_perception; print(\'ok\')" '
                '&& echo "$ROS_AUTOMATIC_DISCOVERY_RANGE $ROS_DOMAIN_ID"')
    assert r.returncode == 0, r.stderr
    ok, env_line = r.stdout.split()[0], r.stdout.split("\n")[1].split()
    assert ok == "ok"
    assert env_line[0] == "LOCALHOST"
    assert 0 <= int(env_line[1]) <= 101


def test_setup_is_cached_on_a_second_run():
    # make test ran setup just before; with nothing changed it only checks stamps.
    r = subprocess.run(["bash", "tools/setup.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    distro, torch = os.environ.get("F2P_ROS_DISTRO", "kilted"), os.environ.get("F2P_TORCH", "cuda")
    assert f"python environment (ROS 2 {distro}, torch {torch}): cached" in r.stdout and "): up to date" in r.stdout



def test_env_sh_puts_the_command_line_tools_on_path_and_no_node():
    # what the README runs (f2p-bringup, f2p-learn, ...), as after `. ./env.sh`; nodes stay for ros2 run
    r = _in_env("for t in f2p-bringup f2p-learn f2p-sign f2p-train f2p-evaluate f2p-datagen f2p-demo; do "
                "$t --help > /dev/null || exit 1; done; command -v planner sim_robot || echo no-nodes")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "no-nodes"


def _pins(lock: str) -> dict[str, str]:
    return dict(line.split("==") for line in (ROOT / lock).read_text().splitlines() if "==" in line and line[0] != "#")


def test_the_jazzy_lock_pins_what_kilteds_does_but_the_ros_wheels():
    """One torch, one mujoco, ... for both distros (tools/lock.sh holds Jazzy's to Kilted's pins):
    a lock updated without the other fails here. Jazzy's ROS set is Kilted's, read for Jazzy."""
    kilted, jazzy = _pins("requirements.lock"), _pins("requirements-jazzy.lock")
    assert {k: v for k, v in kilted.items() if not k.startswith("ros-")} == \
        {k: v for k, v in jazzy.items() if not k.startswith("ros-")}
    named = {d: {k.removeprefix(f"ros-{d}-") for k in pins if k.startswith(f"ros-{d}-")}
             for d, pins in (("kilted", kilted), ("jazzy", jazzy))}
    kilted_only = {"fastdds", "ament-cmake-ros-core", "rmw-security-common"}     # new or renamed in Kilted
    assert named["kilted"] - kilted_only <= named["jazzy"] and {"fastrtps", "python-cmake-module"} <= named["jazzy"]


def test_the_robot_cpu_lock_is_the_main_locks_pins_with_torchs_cpu_build():
    """requirements-robot-cpu.lock (F2P_TORCH=cpu, the robot image): a subset of requirements.lock at
    the same versions, but torch's CPU build and nothing of CUDA, the simulator or torchvision."""
    main, robot = _pins("requirements.lock"), _pins("requirements-robot-cpu.lock")
    assert robot["torch"].endswith("+cpu")
    assert [k for k in robot if k.startswith(("nvidia-", "cuda-", "triton", "torchvision", "mujoco", "ultralytics"))] == []
    assert {k: v for k, v in robot.items() if k != "torch"}.items() <= main.items()
