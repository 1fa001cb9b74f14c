"""The DAG policy (paper 003 §3.2) and failure-informed sampling (§3.3, eqs. 6-8).

:class:`DAGPolicy` is a flow-matching action-chunk policy: a shared observation backbone
(the paper's vision-language backbone; here an MLP over :func:`f2p_afil.observation.features`)
and two action generators of the same shape, ``success`` and ``failure``, each a velocity field
v(A_τ, τ | o) that transports Gaussian noise (τ = 0) to an action chunk (τ = 1). Training
(:func:`flow_matching_loss`) is the standard conditional flow-matching objective of §3.2 on each
generator's own data (success generator: successful and failure-corrected trajectories;
failure generator: the raw failure rollouts), the backbone shared by both losses.

Sampling (:func:`sample_chunks`) integrates the velocity with ``steps`` Euler steps from one
noise draw. Failure-informed guidance replaces the success velocity v_s by (eq. 7, with the
velocity field in place of the noise prediction, as §3.3 says for flow models)

    v_g = v_s + λ_τ (v_s − v_f)

with λ_τ = λ for static guidance, and for adaptive guidance (eq. 8, the design notes' reading)

    λ_τ = λ (1 − cos(v_s, v_f)) / 2

the cosine taken per sample over the flattened chunk: no repulsion where success and failure
generators agree (the shared reach), up to λ where they point apart (a drop, a missed grasp).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .observation import ACTION_DIM, CHUNK, FEATURE_DIM

GUIDANCE_MODES = ("none", "static", "adaptive")


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of a :class:`DAGPolicy` (part of its checkpoint)."""

    feature_dim: int = FEATURE_DIM
    chunk: int = CHUNK
    action_dim: int = ACTION_DIM
    hidden: int = 256
    embedding: int = 128
    time_features: int = 16

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "PolicyConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown policy config fields {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class Guidance:
    """How a chunk is sampled: ``mode`` none (the success generator alone), static (eq. 7 with
    a constant λ) or adaptive (eqs. 7-8); ``scale`` λ; ``steps`` Euler steps of the flow."""

    mode: str = "adaptive"
    scale: float = 1.0
    steps: int = 10

    def __post_init__(self):
        if self.mode not in GUIDANCE_MODES:
            raise ValueError(f"guidance mode must be one of {GUIDANCE_MODES}, got {self.mode!r}")
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"guidance scale must be finite and >= 0, got {self.scale}")
        if int(self.steps) < 1:
            raise ValueError(f"sampling needs at least one step, got {self.steps}")


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class DAGPolicy(nn.Module):
    """Shared backbone + success / failure velocity heads (module docstring). Inputs are
    normalised with the feature statistics stored in the buffers ``feature_mean`` /
    ``feature_std`` (set from the training data, saved with the weights)."""

    HEADS = ("success", "failure")

    def __init__(self, config: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("feature_mean", torch.zeros(c.feature_dim))
        self.register_buffer("feature_std", torch.ones(c.feature_dim))
        self.backbone = nn.Sequential(nn.Linear(c.feature_dim, c.hidden), nn.SiLU(), nn.Linear(c.hidden, c.hidden),
                                      nn.SiLU(), nn.Linear(c.hidden, c.embedding), nn.SiLU())
        n_in = c.embedding + c.chunk * c.action_dim + c.time_features
        self.heads = nn.ModuleDict({h: _mlp(n_in, c.hidden, c.chunk * c.action_dim) for h in self.HEADS})
        freqs = torch.exp(torch.linspace(0.0, math.log(100.0), c.time_features // 2))
        self.register_buffer("time_freqs", freqs, persistent=False)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """Backbone features of (B, feature_dim) observations (computed once per chunk)."""
        return self.backbone((feats - self.feature_mean) / self.feature_std)

    def velocity(self, head: str, embedding: torch.Tensor, chunk: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """v(A_τ, τ | o) of generator ``head`` for (B, chunk, action_dim) noisy chunks at (B,) τ."""
        angles = tau[:, None] * self.time_freqs[None, :]
        x = torch.cat([embedding, chunk.flatten(1), torch.sin(angles), torch.cos(angles)], dim=1)
        return self.heads[head](x).view_as(chunk)


def flow_matching_loss(policy: DAGPolicy, head: str, feats: torch.Tensor, chunks: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Conditional flow matching (§3.2, the flow form of eq. 5): A_τ = (1 − τ) A_0 + τ A_1 with
    A_0 ~ N(0, I), A_1 the data chunk, τ ~ U(0, 1); regress v(A_τ, τ | o) on A_1 − A_0."""
    noise = torch.randn(chunks.shape, generator=generator, device=chunks.device)
    tau = torch.rand(chunks.shape[0], generator=generator, device=chunks.device)
    noisy = (1 - tau)[:, None, None] * noise + tau[:, None, None] * chunks
    pred = policy.velocity(head, policy.embed(feats), noisy, tau)
    return ((pred - (chunks - noise)) ** 2).mean()


def guided_velocity(v_success: torch.Tensor, v_failure: torch.Tensor, guidance: Guidance) -> tuple[torch.Tensor, torch.Tensor]:
    """(v_g, λ_τ per sample): eq. 7 with the static λ or the adaptive λ_τ of eq. 8."""
    b = v_success.shape[0]
    if guidance.mode == "static":
        lam = torch.full((b,), float(guidance.scale), dtype=v_success.dtype)
    else:
        cos = nn.functional.cosine_similarity(v_success.reshape(b, -1), v_failure.reshape(b, -1), dim=1, eps=1e-8)
        lam = guidance.scale * (1.0 - cos) / 2.0
    shape = (b,) + (1,) * (v_success.dim() - 1)
    return v_success + lam.view(shape) * (v_success - v_failure), lam


@torch.no_grad()
def sample_chunks(policy: DAGPolicy, feats: torch.Tensor, guidance: Guidance = Guidance(),
                  generator: torch.Generator | None = None, return_lambda: bool = False):
    """(B, chunk, action_dim) action chunks for (B, feature_dim) observations: Euler integration
    of the (guided) velocity from τ = 0 to 1 (module docstring). ``return_lambda``: also the
    (steps, B) guidance weights used, for inspection."""
    c = policy.config
    emb = policy.embed(feats)
    x = torch.randn((feats.shape[0], c.chunk, c.action_dim), generator=generator)
    dt = 1.0 / guidance.steps
    lams = []
    for k in range(guidance.steps):
        tau = torch.full((feats.shape[0],), k * dt)
        v = policy.velocity("success", emb, x, tau)
        if guidance.mode != "none":
            v, lam = guided_velocity(v, policy.velocity("failure", emb, x, tau), guidance)
            lams.append(lam)
        x = x + dt * v
    if return_lambda:
        return x, (torch.stack(lams) if lams else torch.zeros((0, feats.shape[0])))
    return x
