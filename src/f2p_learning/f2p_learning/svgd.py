"""Stein variational gradient descent (paper 000 §5.2, eq. 5 and 7, A.13.3), batched in torch.

For particles x_1..x_M of a target density p (known up to a constant through ``log_prob``)
the Stein variational direction (Liu & Wang 2016, paper 000 ref. [61]) is

    Φ(x_i) = 1/M Σ_j [ k(x_j, x_i) ∇_{x_j} log p(x_j) + ∇_{x_j} k(x_j, x_i) ]

with the RBF kernel k(x, y) = exp(-||x - y||² / h) and the median-heuristic bandwidth
h = med_{i<j} ||x_i - x_j||² / log(M + 1) (A.13.3, refs [19, 62]). The first term pulls
particles up the log-density, shared through the kernel; the second repels them from each
other, so the set spreads over the posterior instead of collapsing on one mode. Particles
move by Adam on -Φ (A.13.3: "the step size is optimized using the Adam optimizer").

``kernel=False`` drops the kernel: Φ(x_i) = ∇ log p(x_i), i.e. M independent gradient-ascent
runs — the paper's "Gradient" baseline (§6), with everything else identical.

A run that produces a non-finite particle or log-density raises :class:`SVGDDivergedError`
naming the step; ``project`` (e.g. clamping to a box) is applied after every step, and the
history records log p and how many particles sat on the boundary, so callers can report
particles that try to leave the feasible set.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


class SVGDDivergedError(RuntimeError):
    """The particles or their log-density became NaN/inf."""


def median_bandwidth(x: torch.Tensor) -> torch.Tensor:
    """h = median of the pairwise squared distances / log(M + 1) (A.13.3), never below 1e-8."""
    m = x.shape[0]
    d2 = torch.cdist(x, x).pow(2)
    if m < 2:
        return torch.ones((), dtype=x.dtype, device=x.device)
    iu = torch.triu_indices(m, m, 1, device=x.device)
    return (d2[iu[0], iu[1]].median() / math.log(m + 1)).clamp_min(1e-8)


def stein_direction(x: torch.Tensor, grad_logp: torch.Tensor, bandwidth: torch.Tensor | None = None) -> torch.Tensor:
    """Φ (M, D) of eq. 5/7 for particles ``x`` (M, D) with scores ``grad_logp`` (M, D)."""
    m = x.shape[0]
    h = median_bandwidth(x) if bandwidth is None else bandwidth
    diff = x[:, None, :] - x[None, :, :]               # [j, i] = x_j - x_i
    k = torch.exp(-diff.pow(2).sum(-1) / h)            # k[j, i] = k(x_j, x_i)
    attract = k.t() @ grad_logp                        # Σ_j k(x_j, x_i) ∇ log p(x_j)
    repulse = (-2.0 / h) * (k[..., None] * diff).sum(0)  # Σ_j ∇_{x_j} k(x_j, x_i)
    return (attract + repulse) / m


@dataclass
class SVGDResult:
    particles: torch.Tensor                 # (M, D), detached
    log_prob: torch.Tensor                  # (M,) at the final particles
    history: list[dict] = field(default_factory=list)   # per step: mean/max log p, bandwidth, at_bound
    seconds: float = 0.0


def run_svgd(log_prob: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int = 100,
             lr: float = 0.01, kernel: bool = True,
             project: Callable[[torch.Tensor], torch.Tensor] | None = None,
             at_bound: Callable[[torch.Tensor], torch.Tensor] | None = None,
             progress: Callable[[int, dict], None] | None = None) -> SVGDResult:
    """Move particles ``x0`` (M, D) for ``steps`` Adam steps along Φ (or ∇ log p if not ``kernel``).

    ``log_prob`` maps (M, D) → (M,) and must be differentiable. ``project`` maps particles back
    into the feasible set after each step (e.g. a clamp to the parameter box); ``at_bound``
    returns a (M,) bool of particles on the boundary, logged per step."""
    if x0.ndim != 2 or x0.shape[0] < 1:
        raise ValueError(f"particles must be (M, D) with M >= 1, got {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        raise SVGDDivergedError("initial particles are not finite")
    t0 = time.perf_counter()
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    history: list[dict] = []
    lp = None
    for step in range(steps + 1):
        lp = log_prob(x)
        if lp.shape != (x.shape[0],):
            raise ValueError(f"log_prob must return ({x.shape[0]},), got {tuple(lp.shape)}")
        if not torch.isfinite(lp).all():
            raise SVGDDivergedError(f"log-density became non-finite at step {step} "
                                    f"({int((~torch.isfinite(lp)).sum())} of {x.shape[0]} particles)")
        if step == steps:
            break
        (grad,) = torch.autograd.grad(lp.sum(), x)
        if not torch.isfinite(grad).all():
            raise SVGDDivergedError(f"gradient of the log-density became non-finite at step {step}")
        with torch.no_grad():
            h = median_bandwidth(x) if kernel else torch.zeros(())
            phi = stein_direction(x, grad, h) if kernel else grad
        opt.zero_grad()
        x.grad = -phi
        opt.step()
        with torch.no_grad():
            if project is not None:
                x.copy_(project(x))
            if not torch.isfinite(x).all():
                raise SVGDDivergedError(f"particles became non-finite at step {step}")
            rec = {"step": step, "log_prob_mean": float(lp.mean()), "log_prob_max": float(lp.max()),
                   "bandwidth": float(h)}
            if at_bound is not None:
                rec["at_bound"] = int(at_bound(x).sum())
        history.append(rec)
        if progress is not None:
            progress(step, rec)
    return SVGDResult(x.detach(), lp.detach(), history, time.perf_counter() - t0)
