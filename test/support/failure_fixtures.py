"""Shared helpers for the failure / learning tests: a tiny random-weight Γ, a real failure
event from a simulated transport trial, and a checkpoint of that model.

Everything is deterministic (fixed torch seed, fixed task and trial seeds) and fast: a trial
with the tiny model takes well under a second. The first call builds the event; later calls
return deep copies, so a test may modify what it gets.
"""
from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS
from f2p_skill_effect.model import ModelConfig, build_model

#: The version string of the tiny model (event.model_version and checkpoint version).
TINY_VERSION = "tiny"
#: Points per object fed to the tiny model (also the checkpoint's training_data points_per_object).
TINY_POINTS = 32
#: A small Points2Plans config (sa_widths[-1] + id_dim == d_model).
TINY_CONFIG = ModelConfig(max_objects=8, sa_npoints=(16, 4), sa_nsamples=(4, 4), sa_widths=(16, 32, 32),
                          id_dim=32, skill_hidden=32, d_model=64, n_heads=2, ff_dim=64, dec_hidden=16)
#: Task and trial seeds tried in order until a trial yields a failure event.
_TASK_SEEDS = range(21)


def tiny_model():
    """A fresh tiny model with seeded random weights (the same weights on every call)."""
    torch.manual_seed(0)
    model = build_model(TINY_CONFIG)
    model.eval()
    return model


@functools.lru_cache(maxsize=None)
def world():
    """(world config, MujocoBackend) — one backend per session (loading a scene resets it)."""
    from f2p_sim.config import load_world_config
    from f2p_sim.mujoco_backend import MujocoBackend
    cfg = load_world_config()
    return cfg, MujocoBackend(cfg)


def workspace():
    cfg, _ = world()
    return (cfg["workspace"]["lower"], cfg["workspace"]["upper"])


def trial_config():
    from f2p_failure.episode import TrialConfig
    return TrialConfig(n_points=TINY_POINTS, samples=16, iterations=1)


@functools.lru_cache(maxsize=None)
def _failure_trial():
    from f2p_failure.episode import run_trial
    from f2p_sim.tasks import make_task
    cfg, backend = world()
    for seed in _TASK_SEEDS:
        task = make_task("transport", 3, seed, cfg)
        res = run_trial(tiny_model(), TINY_VERSION, task, backend, trial_config(), seed=0)
        if res.outcome == "failure_detected":
            return task, res
    raise AssertionError("no transport seed in 0..20 gave a failure event with the tiny model")


def failure_task():
    """The transport task whose trial failed (a deep copy)."""
    return copy.deepcopy(_failure_trial()[0])


def failure_result():
    """The TrialResult of the failed trial (a deep copy; ``.failure`` is the event)."""
    return copy.deepcopy(_failure_trial()[1])


def failure_event():
    """A real FailureEvent (deep copy) recorded by run_trial with the tiny model."""
    return copy.deepcopy(_failure_trial()[1].failure)


def observed_flipped(event):
    """A copy of ``event`` whose mismatches claim the opposite outcome: every mismatch's
    ``observed`` and the matching observed_after relation entry are negated (the simulator
    can then not reproduce the "real" outcome)."""
    ou, ob = event.observed_after_unary.copy(), event.observed_after_binary.copy()
    mism = []
    for m in event.mismatches:
        flipped = not bool(m["observed"])
        if m["object"] is None:
            ou[m["subject"], UNARY_RELATIONS.index(m["predicate"])] = flipped
        else:
            ob[m["subject"], m["object"], BINARY_RELATIONS.index(m["predicate"])] = flipped
        mism.append({**m, "observed": flipped})
    return dataclasses.replace(event, mismatches=mism, observed_after_unary=ou, observed_after_binary=ob)


def save_tiny_checkpoint(path):
    """Write the tiny model as a checkpoint (version TINY_VERSION); returns the path."""
    from f2p_skill_effect.checkpoint import Checkpoint, save_checkpoint
    save_checkpoint(path, Checkpoint(TINY_CONFIG, tiny_model().state_dict(), TINY_VERSION,
                                     training_data={"points_per_object": TINY_POINTS}))
    return path


def one_torch_thread():
    """Generator for an autouse fixture: one intra-op thread (2 slow cores), restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def assert_finite(a) -> None:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    assert np.isfinite(a).all(), a
