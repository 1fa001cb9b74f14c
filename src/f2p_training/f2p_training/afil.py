"""AFIL's training (paper 003 §3.2; the data comes from ``f2p_datasets.afil_data``).

:func:`chunk_dataset` turns trajectories (per control step: features, action) into
(features, next CHUNK actions) pairs, padding past the end with "hold still, jaws as they
were". :func:`train_policy` is flow matching (f2p_afil.policy) on the success generator with
the success data and, when failure data is given, on the failure generator with it, summing
the two losses over one shared backbone (§3.2 "disjoint supervision").
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from f2p_afil.observation import CHUNK
from f2p_afil.policy import DAGPolicy, PolicyConfig, flow_matching_loss

def chunk_dataset(trajs, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F), chunks (N, chunk, 4)) from every step of ``trajs`` (anything with
    ``feats`` (T, F) and ``actions`` (T, 4), e.g. ``f2p_datasets.afil_data.Trajectory``)."""
    fs, cs = [], []
    for t in trajs:
        n = len(t.actions)
        if n == 0:
            continue
        hold = np.zeros((chunk, 4), dtype=np.float32)
        hold[:, 3] = t.actions[-1, 3]
        padded = np.concatenate([t.actions, hold])
        idx = np.arange(n)[:, None] + np.arange(chunk)[None]
        fs.append(t.feats)
        cs.append(padded[idx])
    if not fs:
        return np.zeros((0, 0), np.float32), np.zeros((0, chunk, 4), np.float32)
    return np.concatenate(fs), np.concatenate(cs)


@dataclass(frozen=True)
class TrainConfig:
    """Flow-matching training of a :class:`DAGPolicy`."""

    steps: int = 6000
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    policy: PolicyConfig = PolicyConfig()


@dataclass
class TrainResult:
    policy: DAGPolicy
    seconds: float
    success_samples: int
    failure_samples: int
    final_loss: dict

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 1), "success_samples": self.success_samples,
                "failure_samples": self.failure_samples, "final_loss": self.final_loss}


def train_policy(success: tuple[np.ndarray, np.ndarray], failure: tuple[np.ndarray, np.ndarray] | None,
                 config: TrainConfig = TrainConfig(), progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train the success generator on ``success`` (features, chunks) and, when given, the
    failure generator on ``failure``, one backbone (module docstring)."""
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    fs, cs = (torch.from_numpy(np.ascontiguousarray(a)) for a in success)
    have_fail = failure is not None and len(failure[0]) > 0
    if have_fail:
        ff, fc = (torch.from_numpy(np.ascontiguousarray(a)) for a in failure)
    policy = DAGPolicy(config.policy)
    allf = torch.cat([fs, ff]) if have_fail else fs
    policy.feature_mean.copy_(allf.mean(0))
    policy.feature_std.copy_(allf.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    t0 = time.monotonic()
    ema = {"success": None, "failure": None}
    policy.train()
    for step in range(config.steps):
        i = torch.randint(0, len(fs), (config.batch,), generator=g)
        ls = flow_matching_loss(policy, "success", fs[i], cs[i], g)
        loss = ls
        ema["success"] = ls.item() if ema["success"] is None else 0.98 * ema["success"] + 0.02 * ls.item()
        if have_fail:
            j = torch.randint(0, len(ff), (config.batch,), generator=g)
            lf = flow_matching_loss(policy, "failure", ff[j], fc[j], g)
            loss = loss + lf
            ema["failure"] = lf.item() if ema["failure"] is None else 0.98 * ema["failure"] + 0.02 * lf.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step + 1) % max(1, config.steps // 10) == 0:
            progress(f"step {step + 1}/{config.steps}: loss success {ema['success']:.4f}"
                     + (f" failure {ema['failure']:.4f}" if have_fail else "") + f" ({time.monotonic() - t0:.0f} s)")
    policy.eval()
    return TrainResult(policy, time.monotonic() - t0, len(fs), len(ff) if have_fail else 0,
                       {k: (round(v, 5) if v is not None else None) for k, v in ema.items()})
