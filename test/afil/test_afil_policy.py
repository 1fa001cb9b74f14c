"""AFIL's policy (paper 003): observation features and their refusals, the flow-matching
training of both generators on one backbone, sampling with static and adaptive guidance
(eqs. 7-8), and the checkpoint's rules (no pickled code, sha256, conventions)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from f2p_afil.checkpoint import load_controller, save_controller
from f2p_afil.controller import AfilController, ControlMonitor, ControlStopped, drive
from f2p_afil.observation import (CHUNK, EXECUTE, FEATURE_DIM, ObservationError, SkillObservation, actions_to_motion,
                                  features)
from f2p_afil.policy import DAGPolicy, Guidance, PolicyConfig, flow_matching_loss, guided_velocity, sample_chunks
from f2p_common.files import file_sha256
from f2p_common.weights import CheckpointError, generate_signing_key, sidecar_path, verify_signature

SMALL = PolicyConfig(hidden=32, embedding=16)


def obs(**changes) -> SkillObservation:
    base = dict(skill="pick_place", params=(0.1, 0.2, 0.0), gripper=np.array([0.5, 0.0, 0.6]), closed=False,
                holding=False, loaded=False, target_lower=np.array([0.48, -0.02, 0.45]),
                target_upper=np.array([0.52, 0.02, 0.5]), contact=np.array([0.5, 0.0, 0.527]),
                reference=np.array([0.5, 0.0, 0.5]), goal=np.array([0.6, 0.2, 0.5]), transfer_z=0.65,
                heading=np.zeros(2))
    base.update(changes)
    return SkillObservation(**base)


def test_features_are_finite_and_refuse_nan_missing_targets_and_parameters_outside_the_box():
    f = features(obs())
    assert f.shape == (FEATURE_DIM,) and f.dtype == np.float32 and np.all(np.isfinite(f))
    with pytest.raises(ObservationError, match="not finite"):
        features(obs(target_lower=np.array([np.nan, 0.0, 0.45])))
    with pytest.raises(ObservationError, match="no target_upper"):
        features(obs(target_upper=None))
    with pytest.raises(ObservationError, match="outside its box"):
        features(obs(params=(0.1, 0.2, 0.9)))
    with pytest.raises(ObservationError, match="unknown skill"):
        features(obs(skill="juggle"))
    with pytest.raises(ValueError, match="not finite"):
        actions_to_motion(np.array([[np.nan, 0.0, 0.0, 1.0]]))


def test_adaptive_guidance_is_zero_where_the_generators_agree_and_full_where_they_oppose():
    v = torch.randn(3, CHUNK, 4)
    g, lam = guided_velocity(v, v.clone(), Guidance("adaptive", 2.0))
    assert torch.allclose(lam, torch.zeros(3), atol=1e-6) and torch.allclose(g, v)
    g, lam = guided_velocity(v, -v, Guidance("adaptive", 2.0))           # cos = -1: λ_τ = λ
    assert torch.allclose(lam, torch.full((3,), 2.0)) and torch.allclose(g, v + 2.0 * (2 * v))
    f = torch.randn(3, CHUNK, 4)
    g, lam = guided_velocity(v, f, Guidance("static", 0.5))              # eq. 7 with a constant λ
    assert torch.allclose(lam, torch.full((3,), 0.5)) and torch.allclose(g, v + 0.5 * (v - f))
    with pytest.raises(ValueError):
        Guidance("negative", 1.0)
    with pytest.raises(ValueError):
        Guidance("static", float("nan"))


def test_training_fits_both_generators_and_sampling_is_seeded():
    torch.manual_seed(0)
    policy = DAGPolicy(SMALL)
    feats = torch.randn(64, FEATURE_DIM)
    good = torch.ones(64, CHUNK, 4) * 0.5          # the success data moves +, the failure data -
    bad = -good
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(300):
        loss = flow_matching_loss(policy, "success", feats, good, g) + flow_matching_loss(policy, "failure", feats, bad, g)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    policy.eval()
    plain = sample_chunks(policy, feats[:4], Guidance("none"), torch.Generator().manual_seed(1))
    again = sample_chunks(policy, feats[:4], Guidance("none"), torch.Generator().manual_seed(1))
    assert plain.shape == (4, CHUNK, 4) and torch.equal(plain, again)
    assert abs(plain.mean().item() - 0.5) < 0.15
    # guidance pushes the sample further from the failure generator's mode
    static = sample_chunks(policy, feats[:4], Guidance("static", 1.0), torch.Generator().manual_seed(1))
    adaptive, lam = sample_chunks(policy, feats[:4], Guidance("adaptive", 1.0), torch.Generator().manual_seed(1),
                                  return_lambda=True)
    assert static.mean() > plain.mean() + 0.1 and adaptive.mean() > plain.mean() + 0.1
    assert lam.shape == (Guidance().steps, 4) and torch.all(lam >= 0) and torch.all(lam <= 1.0 + 1e-6)


def test_checkpoint_round_trip_and_refusals(tmp_path):
    policy = DAGPolicy(SMALL)
    path = tmp_path / "afil.pt"
    digest = save_controller(path, policy, "v-test", training={"skills": ["pick_place"]})
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    loaded, ckpt = load_controller(path)
    assert ckpt.version == "v-test" and ckpt.training["skills"] == ["pick_place"] and ckpt.config == SMALL
    for name, t in policy.state_dict().items():
        assert torch.equal(t, loaded.state_dict()[name])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])                           # truncated
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_controller(path)
    path.write_bytes(data)
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_controller(path)
    bad = tmp_path / "pickle.pt"                                         # a pickle that would run code
    torch.save({"format": "f2p-afil-checkpoint/1", "metadata": "{}", "state_dict": {}, "x": object()}, bad)
    sidecar_path(bad).write_text(hashlib.sha256(bad.read_bytes()).hexdigest() + "  pickle.pt\n")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_controller(bad)
    with pytest.raises(CheckpointError, match="no such"):
        load_controller(tmp_path / "missing.pt")


def test_controller_signs_like_a_skill_effect_checkpoint_and_the_format_is_signed(tmp_path):
    """One weights file, one signing path: ``f2p-sign`` signs an AFIL controller; its signature
    verifies for AFIL's format only, so it can never pass as a signed skill-effect model."""
    from f2p_afil.checkpoint import FORMAT
    from f2p_skill_effect.checkpoint import FORMAT as SKILL_EFFECT_FORMAT
    from f2p_skill_effect.sign import main
    path = tmp_path / "afil.pt"
    save_controller(path, DAGPolicy(SMALL), "v-signed")
    public = generate_signing_key(tmp_path / "k.pem")
    assert main(["sign", str(path), "--key", str(tmp_path / "k.pem")]) == 0
    signature = (tmp_path / "afil.pt.sig").read_text().strip()
    verify_signature(FORMAT, file_sha256(path), signature, public)
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_signature(SKILL_EFFECT_FORMAT, file_sha256(path), signature, public)
    load_controller(path)                                              # signing leaves the file as it was


class _Env:
    """A controlled skill that never ends by itself: counts the actions it was given."""

    def __init__(self, observation):
        self.observation, self.actions, self.stopped = observation, 0, False

    def observe(self):
        return self.observation

    def step(self, actions):
        self.actions += len(actions)

    @property
    def done(self):
        return self.stopped or self.actions >= 5 * EXECUTE

    def stop(self):
        self.stopped = True


def test_the_controller_runs_chunk_by_chunk_and_stops_cleanly_on_cancel_or_a_bad_observation():
    ctl = AfilController(DAGPolicy(SMALL), Guidance("adaptive", 1.0), seed=3)
    env = _Env(obs())
    seen = []

    class Watch(ControlMonitor):
        def chunk(self, index, o, actions):
            seen.append((index, actions.shape))

    assert drive(env, ctl, Watch()) == 5 and seen == [(k, (EXECUTE, 4)) for k in range(5)]

    class Cancel(ControlMonitor):
        def __init__(self):
            self.calls = 0

        def stop_requested(self):
            self.calls += 1
            return self.calls > 2
    env = _Env(obs())
    with pytest.raises(ControlStopped):
        drive(env, ctl, Cancel())
    assert env.stopped and env.actions == 2 * EXECUTE
    env = _Env(obs(gripper=np.array([np.nan, 0.0, 0.6])))
    with pytest.raises(ObservationError):
        drive(env, ctl)
    assert env.stopped and env.actions == 0
