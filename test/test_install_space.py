"""A workspace built WITHOUT --symlink-install (as a release or a robot's deployment would be)
works on its own: a learn step and a plan run from that install space alone, every module and
every resource (shipped model, world config) coming from it, never from the source tree."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)

#: Runs in the install space only: a plan with the shipped model on a simulated scene, and a
#: learn step from an event with a tiny checkpoint. Prints where everything came from.
SCRIPT = r"""
import json, sys
import f2p_common, f2p_learning, f2p_sim, f2p_skill_effect, f2p_training
from f2p_learning.learn import LearnConfig, learn
from f2p_sim.config import default_config_path, load_world_config
from f2p_sim.episode import TrialConfig, run_trial
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.tasks import make_task
from f2p_skill_effect.checkpoint import load_model, shipped_model
from f2p_training.train import FineTuneRecipe

event, checkpoint, out = sys.argv[1:4]
model, ck = load_model(shipped_model("skill_effect_pretrained.pt"))
world = load_world_config()
backend = MujocoBackend(world)
trial = run_trial(model, ck.version, make_task("transport", 3, 1000, world), backend,
                  TrialConfig(samples=32, iterations=1), seed=0)
report = learn(LearnConfig(event=event, checkpoint=checkpoint, out_dir=out, particles=4, svgd_steps=2,
                           fine_tune=FineTuneRecipe(epochs=1), skip_classification=True, seed=2))
print(json.dumps({
    "modules": [m.__file__ for m in (f2p_common, f2p_learning, f2p_sim, f2p_skill_effect, f2p_training)],
    "model": str(shipped_model("skill_effect_pretrained.pt")), "world": str(default_config_path()),
    "plan": trial.plan.skeleton if trial.plan else None, "trial": trial.outcome,
    "learn": report.outcome, "child": report.child_version}))
"""


@pytest.fixture(scope="module")
def install_space(tmp_path_factory):
    """colcon build (copying, not symlinking) of the learner and everything it needs."""
    if shutil.which("colcon") is None:
        pytest.fail("colcon is not on PATH: run the tests in the built environment (. ./env.sh)")
    base = tmp_path_factory.mktemp("install_space")
    env = {**os.environ, "AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV)}
    r = subprocess.run(["colcon", "--log-base", str(base / "log"), "build", "--base-paths", str(ROOT / "src"),
                        "--build-base", str(base / "build"), "--install-base", str(base / "install"),
                        "--packages-up-to", "f2p_learning", "--event-handlers", "console_direct-", "console_cohesion-",
                        "status-", "summary-", "--parallel-workers", "2"],
                       cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return base / "install"


def test_learn_and_plan_from_a_non_symlink_install_space(install_space, tmp_path):
    from f2p_failure.events import save_event
    from support.failure_fixtures import failure_event, save_tiny_checkpoint
    event = save_event(failure_event(), tmp_path / "events")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    assert not any(p.is_symlink() for p in install_space.rglob("*.py")), "expected a copying (non-symlink) install"
    # a clean environment: the venv's interpreter and ROS wheels, the temporary install space, no source tree
    script = (f". {VENV}/bin/activate && export AMENT_PREFIX_PATH={VENV} && "
              f"COLCON_CURRENT_PREFIX={install_space} . {install_space}/setup.sh && "
              f"python -c '{SCRIPT}' {event} {checkpoint} {tmp_path / 'learn'}")
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH", "LANG", "ROS_DOMAIN_ID", "MUJOCO_GL",
                                                       "PYOPENGL_PLATFORM", "OMP_NUM_THREADS")}
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for path in got["modules"] + [got["model"], got["world"]]:
        assert path.startswith(str(install_space)), f"{path} does not come from the install space"
        assert not Path(path).is_symlink()
    assert got["plan"] and got["trial"] in ("success", "failure_detected", "goal_not_reached")
    assert got["learn"] == "learned" and got["child"]
    assert (tmp_path / "learn" / "model.pt").is_file()
