"""Physical skill execution a policy can fail at (f2p_sim.control): the jaws hold only where
they close on the object, the demonstrator finishes every skill and recovers from a failure
state, snapshots restore a skill exactly, and a controlled skill stops cleanly on a cancel or a
refused observation."""
from __future__ import annotations

import numpy as np
import pytest

from f2p_afil.controller import ControlMonitor
from f2p_afil.observation import motion_to_actions
from f2p_sim.config import load_world_config
from f2p_sim.control import SkillEnv, execute_controlled
from f2p_sim.demonstrator import demonstrate
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_datasets.skill_tasks import TASKS, make_skill_task
from f2p_sim.skills import SkillError


@pytest.fixture(scope="module")
def backend():
    return MujocoBackend(load_world_config())


def _begin(backend, name, seed=0, step=0):
    task = make_skill_task(name, seed, backend.cfg)
    backend.load(task.scene)
    env = SkillEnv(backend)
    s = task.steps[step]
    return env, env.begin(s.skill, [g.name for g in backend.segments].index(s.target), s.params,
                          np.random.default_rng(seed))


def _demonstrate(env, obs, limit=1000):
    for _ in range(limit):
        if env.done:
            break
        env.step(demonstrate(obs)[None])
        obs = env.observe()
    return env.outcome()


@pytest.mark.parametrize("name", ["pick_place", "push", "open_drawer"])
def test_the_demonstrator_does_each_skill(backend, name):
    env, obs = _begin(backend, name, seed=0)
    res = _demonstrate(env, obs)
    assert res.success, res
    assert env.target in res.touched and not res.stopped


def test_tasks_are_reproducible_and_out_of_domain_variants_differ(backend):
    cfg = backend.cfg
    for name in TASKS:
        assert make_skill_task(name, 7, cfg).scene.to_dict() == make_skill_task(name, 7, cfg).scene.to_dict()
    train = make_skill_task("push", 3, cfg).scene
    small_or_big = make_skill_task("push", 3, cfg, "size").scene
    side = small_or_big.objects[2].size[0]
    assert side < 0.036 or side > 0.07
    assert len(make_skill_task("push", 3, cfg, "clutter").scene.objects) >= len(train.objects) + 4
    with pytest.raises(ValueError, match="no out-of-domain"):
        make_skill_task("open_drawer", 0, cfg, "mass")


def test_closing_beside_the_object_holds_nothing_and_a_recovery_finishes_the_pick(backend):
    env, obs = _begin(backend, "pick_place", seed=1)
    half = 0.5 * (obs.target_upper - obs.target_lower)
    # Come down beside the object (outside the middle of its top) and close: the jaws close on air.
    beside = obs.contact + np.array([0.8 * half[0] + 0.006, 0.0, 0.0])
    for _ in range(40):
        d = beside - env.observe().gripper
        if np.linalg.norm(d) < 1e-4:
            break
        env.step(motion_to_actions(np.clip(d, -0.01, 0.01)[None], np.array([False])))
    env.step(motion_to_actions(np.zeros((1, 3)), np.array([True])))
    obs = env.observe()
    assert obs.closed and not obs.holding and backend.held == -1
    snap = env.snapshot()
    # lifting carries nothing: the object stays where it was
    env.step(motion_to_actions(np.tile([0.0, 0.0, 0.01], (5, 1)), np.ones(5, bool)))
    assert np.allclose(env.observe().reference, obs.reference, atol=1e-3)
    # from the failure state, the demonstrator opens, realigns, grasps and places (a correction)
    env.restore(snap)
    assert np.allclose(env.observe().gripper, obs.gripper) and env.observe().closed
    res = _demonstrate(env, env.observe())
    assert res.success and env.ever_held


def test_an_aligned_close_holds_and_carries_the_object(backend):
    env, obs = _begin(backend, "pick_place", seed=2)
    for _ in range(60):                       # the demonstrator until it holds
        env.step(demonstrate(obs)[None])
        obs = env.observe()
        if obs.holding:
            break
    assert obs.holding and backend.held == env.target
    before = obs.reference.copy()
    env.step(motion_to_actions(np.tile([0.0, 0.0, 0.01], (5, 1)), np.ones(5, bool)))
    assert env.observe().reference[2] > before[2] + 0.04
    env.step(motion_to_actions(np.zeros((1, 3)), np.array([False])))     # opening drops it
    assert backend.held == -1 and not env.observe().holding


class _Cancel(ControlMonitor):
    def __init__(self, after: int):
        self.after, self.chunks = after, 0

    def chunk(self, index, obs, actions):
        self.chunks += 1

    def stop_requested(self):
        return self.chunks >= self.after


def test_a_controlled_skill_stops_cleanly_on_cancel_and_on_a_refused_observation(backend):
    task = make_skill_task("pick_place", 4, backend.cfg)
    backend.load(task.scene)
    target = [s.name for s in backend.segments].index("box_a")
    hold_on = lambda o: demonstrate(o)[None]       # noqa: E731 (the demonstrator, one step a chunk)
    report, result = execute_controlled(backend, "pick_place", target, task.steps[0].params, hold_on, _Cancel(12))
    assert report.stopped and "stopped on request" in report.message and not result.success
    assert backend.held == -1                                   # the jaws let go, the gripper parked
    assert np.allclose(backend.gripper_pose()[0], backend.cfg["gripper"]["home"])

    def blind(o):
        from f2p_afil.observation import features
        features(o.__class__(**{**o.__dict__, "target_lower": np.full(3, np.nan)}))
    backend.load(task.scene)
    report, result = execute_controlled(backend, "pick_place", target, task.steps[0].params, blind)
    assert report.stopped and "refused its observation" in report.message and result.steps == 0
    backend.load(task.scene)
    report, result = execute_controlled(backend, "pick_place", target, task.steps[0].params, hold_on)
    assert result.success and not report.stopped and report.grasp_success and target in report.moved
    with pytest.raises(SkillError, match="outside its box"):
        execute_controlled(backend, "pick_place", target, (0.0, 0.0, 0.9), hold_on)
    with pytest.raises(SkillError, match="needs a drawer"):
        execute_controlled(backend, "open_drawer", target, (0.1,), hold_on)
