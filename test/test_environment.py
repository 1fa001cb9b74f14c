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
    assert "python environment: cached" in r.stdout and "workspace: up to date" in r.stdout



def test_env_sh_puts_the_command_line_tools_on_path_and_no_node():
    # what the README runs (f2p-bringup, f2p-learn, ...), as after `. ./env.sh`; nodes stay for ros2 run
    r = _in_env("for t in f2p-bringup f2p-learn f2p-sign f2p-train f2p-evaluate f2p-datagen f2p-demo; do "
                "$t --help > /dev/null || exit 1; done; command -v planner sim_robot || echo no-nodes")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "no-nodes"
