"""Pre-train or fine-tune the skill-effect model Γ (paper 000 A.11.2, §5): :func:`train`.

``train(TrainConfig) -> TrainResult``; the command line ``f2p-train`` builds the config from
its arguments. Pre-training (paper: 10 epochs, Adam 1e-4) trains a fresh ``ModelConfig`` on
dataset folders; fine-tuning starts from ``init_checkpoint`` and records its version as the
child's parent. :class:`FineTuneRecipe` is the one definition of how the learner fine-tunes
on new data (paper 000 §5: 200 epochs, Adam 1e-4, the last epoch's weights).

Data: dataset folders (``f2p_common.dataset``), each transition padded to the model's
``max_objects`` with a mask, ``points`` points sampled per object (seeded). A fixed fraction is
held out for validation; training stops early after ``patience`` epochs without improvement
and the best-validation weights are written. ``val_fraction`` 0 trains on everything for
``epochs`` and writes the last weights (fine-tuning on a D+ of 20: two held-out transitions are
too few to pick an epoch by — measured, the pick fell on epoch 47 of 200, before the lesson
was learned). Optional: ``replay_data`` with ``replay_fraction`` (that share of every epoch
drawn afresh from the original data, against forgetting), ``relabel_objects``
(:func:`f2p_training.transitions.relabel_objects`) and ``anchor_weight``
(:func:`placement_anchor_loss`). ``seed`` makes runs repeatable on one device; the default
device is CUDA when there is one, else the CPU (:func:`default_device`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from f2p_common.dataset import DEFAULT_SKIP_FLAGS, FLAG_UNSEEN_SEGMENT
from f2p_skill_effect.checkpoint import (Checkpoint, CheckpointError, load_checkpoint, model_from_checkpoint,
                                        save_checkpoint)
from f2p_skill_effect.model import ModelConfig, Observation, SkillBatch, build_model, compute_losses

from .transitions import KEYS, load_transitions, to_batch


def default_device() -> str:
    """"cuda" when a CUDA device is usable, else "cpu": the default of training and evaluation."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class TrainConfig:
    """Everything one training run depends on (recorded in the checkpoint's ``training_data``).

    data              dataset folders to train on
    out               checkpoint file to write (with its .sha256 sidecar)
    init_checkpoint   fine-tune from this checkpoint (its config; recorded as the parent)
    model             architecture of a pre-training run (None: ``ModelConfig()``)
    replay_data       original data mixed into every epoch (fine-tuning), ``replay_fraction`` of it
    keep_unstable     train on transitions flagged unstable too (e.g. a loaded bin resting tilted
                      on a table edge); only transitions with an unseen segment are skipped
    keep_unseen_after also keep transitions in which a segment seen in O_t is unseen in O_t+1
                      (``load_transitions``)
    relabel_objects   present every ``data`` transition (not replay) under a fresh random
                      permutation of its object slots each time it is drawn
    anchor_weight     fine-tuning only: weight of :func:`placement_anchor_loss` (0 = off)
    lineage           stored as ``training_data.lineage`` (e.g. the failure event learned from)
    version           version string (default: the first 16 hex digits of the weights' SHA-256)
    log, log_every    progress lines (one per ``log_every`` epochs and the last); None = silent
    """

    data: Sequence[str | Path]
    out: str | Path
    init_checkpoint: str | Path | None = None
    model: ModelConfig | None = None
    replay_data: Sequence[str | Path] = ()
    replay_fraction: float = 0.0
    epochs: int = 10
    lr: float = 1e-4
    batch_size: int = 16
    points: int = 128          # points per object: the first set-abstraction layer's 128 centroids
    val_fraction: float = 0.1
    patience: int = 10
    seed: int = 0
    device: str = field(default_factory=default_device)
    version: str | None = None
    keep_unstable: bool = False
    keep_unseen_after: bool = False
    relabel_objects: bool = False
    anchor_weight: float = 0.0
    lineage: dict | None = None
    log: Callable[[str], None] | None = None
    log_every: int = 1

    def validate(self) -> None:
        """ValueError naming the first setting that cannot work."""
        if not self.data:
            raise ValueError("no training data folders")
        if self.epochs < 1 or self.batch_size < 1 or self.points < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size, points and patience must be >= 1")
        if not (0 < self.lr < math.inf):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0.0 <= self.replay_fraction < 1.0:
            raise ValueError("replay_fraction must be in [0, 1)")
        if self.replay_fraction > 0 and not self.replay_data:
            raise ValueError("replay_fraction needs replay_data")
        if not (0 <= self.anchor_weight < math.inf):
            raise ValueError("anchor_weight must be a finite number >= 0")
        if self.anchor_weight > 0 and not self.init_checkpoint:
            raise ValueError("anchor_weight needs init_checkpoint (the parent it anchors to)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.init_checkpoint and self.model is not None:
            raise ValueError("model (an architecture) is for pre-training; fine-tuning takes the parent's")


@dataclass(frozen=True)
class FineTuneRecipe:
    """How the learner fine-tunes a parent on new data (paper 000 §5, A.11.2): every D+
    transition, no validation split, the last epoch's weights.

    Beyond the paper: the replayed share of original data (against forgetting; drawn afresh
    each epoch), object relabelling (the lesson holds for every object, not only the failure's
    segment indices), the placement anchor (off by default) and keeping out-of-view
    transitions (off by default). Batch 4: measured on an organize D+, after 200 epochs at
    batch 16 the model still put p < 0.5 on 8 of D+'s own 17 "item still inside" transitions,
    at batch 4 on 1."""

    epochs: int = 200
    lr: float = 1e-4
    batch_size: int = 4
    replay_fraction: float = 0.5
    relabel_objects: bool = True
    anchor_weight: float = 0.0
    keep_unseen_after: bool = False

    def train_config(self, data: Sequence[str | Path], out: str | Path, parent: str | Path, *,
                     points: int, seed: int, replay_data: Sequence[str | Path] = (), keep_unstable: bool,
                     lineage: dict | None = None, log: Callable[[str], None] | None = None) -> TrainConfig:
        """The :class:`TrainConfig` of this recipe for fine-tuning ``parent`` on ``data``."""
        replay = list(replay_data) if self.replay_fraction > 0 else []
        return TrainConfig(data=list(data), out=out, init_checkpoint=parent, replay_data=replay,
                           replay_fraction=self.replay_fraction if replay else 0.0, epochs=self.epochs, lr=self.lr,
                           batch_size=self.batch_size, points=points, val_fraction=0.0, seed=seed,
                           keep_unstable=keep_unstable, keep_unseen_after=self.keep_unseen_after,
                           relabel_objects=self.relabel_objects, anchor_weight=self.anchor_weight, lineage=lineage,
                           log=log, log_every=max(1, self.epochs // 10))


@dataclass
class TrainResult:
    """What :func:`train` wrote: the checkpoint, its version and file SHA-256, and the run."""

    checkpoint: Path
    version: str
    sha256: str
    parent_version: str | None
    train_transitions: int
    val_transitions: int
    replay_per_epoch: int
    epochs_run: int
    best_val_total: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def placement_anchor_loss(model, parent, batch: dict[str, torch.Tensor], x_t: torch.Tensor,
                          gen: torch.Generator) -> torch.Tensor:
    """Keep the parent's answer to "where does the moved object end up" over the whole skill
    parameter box while fine-tuning (a Learning-without-Forgetting-style distillation term;
    beyond paper 000 §5, opt-in).

    For each transition of the batch, one skill parameter vector is drawn uniformly from the
    skill's box (the box the planner searches); the child's predicted relations of the skill's
    target to every other object after that action, R'(target, j) and the target's unary
    relations, are pulled towards the frozen parent's by binary cross-entropy. Only the
    target's own row is anchored: the lesson a failure teaches (e.g. "what is inside the
    picked cup goes with it", subject = the contents) is left to D+. Why: a D+ of 20-200
    transitions around one failure starts the moved object in a few centimetres of the
    workspace, fine-tuning learns placements relative to that start, and off D+ the child calls
    placements past a table's edges "above" it — which a planner maximising Γ then seeks.
    ``x_t``: the child's Enc(O_t) of this batch (compute_losses)."""
    mask, target, skill = batch["mask"], batch["target"], batch["skill"]
    lo, hi = model.param_lo[skill], model.param_hi[skill]
    u = torch.rand(lo.shape, generator=gen).to(lo.device)
    params = lo + u * (hi - lo)
    sk = SkillBatch(skill, target, params)
    rows = torch.arange(len(target), device=target.device)
    with torch.no_grad():
        xp = parent.encode(Observation(batch["points_t"], mask))
        pu, pb = parent.relation_logits(xp + parent.delta(xp, mask, sk))
        pu, pb = torch.sigmoid(pu[rows, target]), torch.sigmoid(pb[rows, target])
    cu, cb = model.relation_logits(x_t + model.delta(x_t, mask, sk))
    cu, cb = cu[rows, target], cb[rows, target]
    others = mask & (torch.arange(mask.shape[1], device=mask.device)[None] != target[:, None])
    bin_loss = F.binary_cross_entropy_with_logits(cb, pb, reduction="none").mean(-1)
    bin_loss = (bin_loss * others).sum() / others.sum().clamp_min(1)
    return bin_loss + F.binary_cross_entropy_with_logits(cu, pu)


def run_epoch(model, arrays, idx, batch_size, device, opt=None, gen=None, relabel=None, rng=None,
              anchor=None) -> dict[str, float]:
    """One pass over rows ``idx`` (training when ``opt`` is given); mean of each loss. ``anchor``:
    (parent model, weight, torch generator) adds ``weight`` x :func:`placement_anchor_loss`."""
    model.train(opt is not None)
    if opt is not None:
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
    sums, n = {}, 0
    with torch.set_grad_enabled(opt is not None):
        for s in range(0, len(idx), batch_size):
            b = to_batch(arrays, idx[s:s + batch_size], device, relabel, rng)
            if opt is not None and anchor is not None:
                parent, weight, agen = anchor
                losses, x_t = compute_losses(model, b, return_latent=True)
                losses["anchor"] = placement_anchor_loss(model, parent, b, x_t, agen)
                losses["total"] = losses["total"] + weight * losses["anchor"]
            else:
                losses = compute_losses(model, b)
            if opt is not None:
                opt.zero_grad()
                losses["total"].backward()
                opt.step()
            m = len(idx[s:s + batch_size])
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * m
            n += m
    return {k: v / max(n, 1) for k, v in sums.items()}


def weights_version(state_dict: dict[str, torch.Tensor]) -> str:
    """The default version of a checkpoint: the first 16 hex digits of its weights' SHA-256."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        h.update(state_dict[k].numpy().tobytes())
    return h.hexdigest()[:16]


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or fine-tune) Γ as ``cfg`` says and write the checkpoint; see the module docstring.
    ValueError for settings or data that cannot work; CheckpointError for a bad parent."""
    cfg.validate()
    log = cfg.log or (lambda _msg: None)
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    parent = load_checkpoint(cfg.init_checkpoint) if cfg.init_checkpoint else None
    arch = parent.config if parent is not None else (cfg.model or ModelConfig())
    model = build_model(arch).to(cfg.device)
    if parent is not None:
        model.load_state_dict(parent.state_dict)
    data = load_transitions(cfg.data, cfg.points, arch.max_objects, cfg.seed,
                            FLAG_UNSEEN_SEGMENT if cfg.keep_unstable else DEFAULT_SKIP_FLAGS, cfg.keep_unseen_after)
    n = len(data["mask"])
    perm = np.random.default_rng(cfg.seed).permutation(n)
    n_val = max(1, int(round(cfg.val_fraction * n))) if n > 1 and cfg.val_fraction > 0 else 0
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    n_rep, replay_rows = 0, np.zeros(0, np.int64)
    if cfg.replay_fraction > 0:
        # The whole replay set is kept and each epoch draws its share afresh: with a fixed draw,
        # 200 epochs over ~20 D+ and ~20 replay transitions forget everything those 20 do not show.
        replay = load_transitions(cfg.replay_data, cfg.points, arch.max_objects, cfg.seed + 1)
        n_rep = int(round(cfg.replay_fraction / (1 - cfg.replay_fraction) * len(train_idx)))
        replay_rows = n + np.arange(len(replay["mask"]))
        data = {k: np.concatenate([data[k], replay[k]]) for k in KEYS}
    replay_rng = np.random.default_rng(cfg.seed + 2)
    relabel = np.zeros(len(data["mask"]), bool)
    relabel[:n] = cfg.relabel_objects
    relabel_rng = np.random.default_rng(cfg.seed + 3)
    log(f"[f2p-train] {len(train_idx)} train (+ {n_rep} replay of {len(replay_rows)} per epoch) / {len(val_idx)} val "
        f"transitions, device {cfg.device}, {sum(p.numel() for p in model.parameters())} parameters")
    anchor = None
    if cfg.anchor_weight > 0:
        frozen = model_from_checkpoint(parent).to(cfg.device)
        frozen.requires_grad_(False)
        anchor = (frozen, cfg.anchor_weight, torch.Generator().manual_seed(cfg.seed + 4))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best, best_sd, history, stale = float("inf"), None, [], 0
    t0 = time.time()
    for ep in range(1, cfg.epochs + 1):
        idx = train_idx
        if n_rep:
            idx = np.concatenate([train_idx, replay_rng.choice(replay_rows, n_rep, replace=n_rep > len(replay_rows))])
        tr = run_epoch(model, data, idx, cfg.batch_size, cfg.device, opt, gen, relabel, relabel_rng, anchor)
        va = run_epoch(model, data, val_idx, cfg.batch_size, cfg.device) if len(val_idx) else tr
        history.append({"epoch": ep, "train": tr, "val": va})
        if ep % max(1, cfg.log_every) == 0 or ep == cfg.epochs:
            log(f"[f2p-train] epoch {ep}/{cfg.epochs} train {tr['total']:.4f} val {va['total']:.4f} "
                f"(det {va['detection']:.3f} reg {va['regularization']:.3f} pos {va['pos']:.3f} "
                f"pred {va['prediction']:.3f}"
                + (f" anchor {tr['anchor']:.3f}" if "anchor" in tr else "") + f") {time.time() - t0:.1f}s")
        if va["total"] < best or not len(val_idx):   # without a validation set: the last epoch's weights
            best, stale = va["total"], 0
            best_sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                log(f"[f2p-train] early stop: no val improvement for {cfg.patience} epochs")
                break
    version = cfg.version or weights_version(best_sd)
    ck = Checkpoint(arch, best_sd, version, parent.version if parent else None,
                    training_data={"data": [str(Path(d)) for d in cfg.data],
                                   "replay_data": [str(Path(d)) for d in cfg.replay_data],
                                   "replay_fraction": cfg.replay_fraction, "transitions": int(n),
                                   "relabel_objects": cfg.relabel_objects, "anchor_weight": cfg.anchor_weight,
                                   "keep_unseen_after": cfg.keep_unseen_after,
                                   "points_per_object": cfg.points, "seed": cfg.seed, "lineage": cfg.lineage},
                    metrics={"best_val_total": best, "epochs_run": len(history), "lr": cfg.lr,
                             "history": history})
    digest = save_checkpoint(cfg.out, ck)
    log(f"[f2p-train] wrote {cfg.out} version {version} sha256 {digest}")
    return TrainResult(Path(cfg.out), version, digest, ck.parent_version, len(train_idx), len(val_idx), n_rep,
                       len(history), best, history, time.perf_counter() - t_start)


# ---------------------------------------------------------------------------- command line
def config_from_args(argv=None) -> TrainConfig:
    """The :class:`TrainConfig` of an ``f2p-train`` command line (defaults: TrainConfig's)."""
    d = TrainConfig(data=[], out="")
    p = argparse.ArgumentParser(prog="f2p-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="dataset folder(s)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--init-checkpoint", default=None, help="fine-tune from this checkpoint")
    p.add_argument("--replay-data", nargs="*", default=[], help="original data to mix in while fine-tuning")
    p.add_argument("--replay-fraction", type=float, default=d.replay_fraction,
                   help="fraction of each epoch from --replay-data")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--points", type=int, default=d.points, help="points sampled per object")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping: epochs without val improvement")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--version", default=None, help="version string (default: sha of weights)")
    p.add_argument("--config-json", default=None, help="ModelConfig overrides as JSON (pre-training only)")
    p.add_argument("--keep-unstable", action="store_true", help="train on transitions flagged unstable too")
    p.add_argument("--keep-unseen-after", action="store_true",
                   help="keep transitions in which an object falls out of view (TrainConfig.keep_unseen_after)")
    p.add_argument("--relabel-objects", action="store_true",
                   help="show every --data transition under fresh random object slots each time it is drawn")
    p.add_argument("--anchor-weight", type=float, default=d.anchor_weight,
                   help="fine-tuning only: weight of the placement anchor term (0 = off)")
    p.add_argument("--lineage-json", default=None, help="JSON object stored as training_data.lineage")
    p.add_argument("--log-every", type=int, default=d.log_every, metavar="N",
                   help="print one epoch line every N epochs and after the last")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        cfg = TrainConfig(
            data=a.data, out=a.out, init_checkpoint=a.init_checkpoint,
            model=ModelConfig.from_json(json.loads(a.config_json)) if a.config_json else None,
            replay_data=a.replay_data, replay_fraction=a.replay_fraction, epochs=a.epochs, lr=a.lr,
            batch_size=a.batch_size, points=a.points, val_fraction=a.val_fraction, patience=a.patience, seed=a.seed,
            device=a.device, version=a.version, keep_unstable=a.keep_unstable, keep_unseen_after=a.keep_unseen_after,
            relabel_objects=a.relabel_objects, anchor_weight=a.anchor_weight,
            lineage=json.loads(a.lineage_json) if a.lineage_json else None,
            log=None if a.quiet else (lambda msg: print(msg, flush=True)), log_every=a.log_every)
        cfg.validate()
    except (ValueError, TypeError) as e:
        p.error(str(e))
    return cfg


def main(argv=None) -> int:
    cfg = config_from_args(argv)
    try:
        train(cfg)
    except (ValueError, OSError, CheckpointError) as e:   # unusable data folders or parent checkpoint
        print(f"f2p-train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
