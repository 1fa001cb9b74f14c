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
    from f2p_sim.episode import TrialConfig
    return TrialConfig(n_points=TINY_POINTS, samples=16, iterations=1)


@functools.lru_cache(maxsize=None)
def _failure_trial():
    from f2p_sim.episode import run_trial
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


def assert_finite(a) -> None:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    assert np.isfinite(a).all(), a


def handmade_event(seed=0, with_after=False, **changes):
    """A small hand-made FailureEvent (3 segments, random clouds and relations, two consistent
    mismatches); ``changes`` replace fields (``dataclasses.replace``)."""
    from f2p_failure.events import FailureEvent
    rng = np.random.default_rng(seed)
    labels = ["table", "bin", "cup"]
    s = len(labels)
    clouds = [rng.normal(size=(n, 3)).astype(np.float32) for n in (7, 4, 5)]
    unary = np.zeros((s, 3), bool)
    unary[1:, 0] = True
    binary = rng.random((s, s, 9)) < 0.3
    binary[np.arange(s), np.arange(s)] = False
    observed = binary.copy()
    observed[2, 1, 8] = False
    predicted_binary = rng.random((s, s, 9)).astype(np.float32)
    predicted_binary[np.arange(s), np.arange(s)] = 0.0
    predicted_binary[2, 1, 8] = 0.9
    predicted_unary = rng.random((s, 3)).astype(np.float32)
    predicted_unary[2, 0] = 0.25
    event = FailureEvent(
        event_id="3f1c7a52-5d0e-4f8e-9a51-3c1f0b6a2e7d",
        robot_id="stretch-3012",
        plan_id="plan-42",
        step_index=2,
        model_version="skill-effect-v1",
        segment_ids=["table_0", "bin_1", "cup_2"],
        segment_labels=labels,
        observation_before=clouds,
        relations_before_unary=unary,
        relations_before_binary=binary,
        skill="pick_place",
        target=2,
        params=[0.1, -0.25, 0.05],
        predicted_after_unary=predicted_unary,
        predicted_after_binary=predicted_binary,
        observed_after_unary=unary.copy(),
        observed_after_binary=observed,
        observation_after=[c + np.float32(0.01) for c in clouds] if with_after else [],
        mismatches=[{"predicate": "inside", "subject": 2, "object": 1, "predicted": float(np.float32(0.9)), "observed": False},
                    {"predicate": "movable", "subject": 2, "object": None, "predicted": 0.25, "observed": True}],
        category="incorrect_prediction",
        frame_id="world",
        stamp_ns=1_700_000_000_123_456_789,
        context={"task": "cup_in_bin", "goal": [["inside", "cup_2", "bin_1"]], "seed": 7,
                 "camera": {"name": "front", "fov": 58.0}},
    )
    return dataclasses.replace(event, **changes)
