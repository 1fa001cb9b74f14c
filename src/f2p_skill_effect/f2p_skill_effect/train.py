"""``f2p-train``: pre-train or fine-tune the skill-effect model Γ (paper 000 A.11.2, §5).

Pre-training: ``f2p-train --data DATASET --out model.pt`` (paper: 10 epochs, Adam 1e-4).
Fine-tuning on new (e.g. SVGD-targeted) data D+: ``--init-checkpoint old.pt --epochs 200
--lr 1e-4`` (paper 000 §5 / A.11.2), optionally ``--replay-data ORIGINAL
--replay-fraction 0.3`` so that fraction of every epoch's training set comes from the
original data, drawn afresh each epoch (guards against forgetting), and optionally
``--anchor-weight W`` (:func:`placement_anchor_loss`: the parent's predictions of where each
skill's target ends up, over the whole parameter box, are kept). The written checkpoint
records the parent's version.

Data: f2p_sim dataset folders (f2p_sim.dataset), each transition padded to the model's
``max_objects`` with a mask, ``--points`` points sampled per object (seeded). A fixed
fraction is held out for validation; training stops early after ``--patience`` epochs
without improvement and the best-validation weights are written. ``--val-fraction 0`` trains
on everything for ``--epochs`` and writes the last weights (fine-tuning on a D+ of 20: two
held-out transitions are too few to pick an epoch by — measured, the pick fell on epoch 47
of 200, before the lesson was learned). ``--seed`` makes runs repeatable; CPU by default,
CUDA when available (``--device``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from f2p_sim.dataset import DEFAULT_SKIP_FLAGS, FLAG_UNSEEN_SEGMENT, SimDataset

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .model import ModelConfig, Observation, SkillBatch, build_model, compute_losses

KEYS = ("points_t", "points_t1", "mask", "seen_t1", "skill", "target", "params", "unary_t", "unary_t1",
        "binary_t", "binary_t1", "pos_t", "pos_t1")


def load_transitions(folders, n_points: int, max_objects: int, seed: int,
                     skip_flags: int = DEFAULT_SKIP_FLAGS, keep_unseen_after: bool = False) -> dict[str, np.ndarray]:
    """Stack every usable transition of ``folders`` into padded arrays (see compute_losses).

    ``keep_unseen_after``: also keep transitions flagged for an unseen segment when every segment
    has points in O_t and only O_t+1 lacks some (an object fell out of the camera's view, e.g. a
    loaded cup dropped past a table's far edge, its items hidden behind the table). Their labels
    R_t+1 and poses come from the simulator, so detection, prediction and pos train on them; the
    regularisation term needs Enc(O_t+1) and skips the unseen segments (``seen_t1`` False; their
    O_t+1 points are a copy of their O_t points, only so that encoding stays finite)."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in KEYS}
    if keep_unseen_after:
        skip_flags &= ~FLAG_UNSEEN_SEGMENT
    for folder in folders:
        for tr in SimDataset(folder).transitions(skip_flags):
            n = tr["seg_class"].shape[0]
            if n > max_objects:
                raise ValueError(f"{folder}: a scene has {n} segments > max_objects={max_objects}")
            # (hand-written datasets may carry no counts: every segment is seen then)
            seen_t1 = np.asarray(tr.get("obs_t1_counts", np.ones(n))) > 0
            seen_t = np.asarray(tr.get("obs_t_counts", np.ones(n))) > 0
            if keep_unseen_after and (not seen_t.all() or not seen_t1.any()):
                continue   # a segment unseen in O_t cannot be encoded: the transition is not usable
            k = tr["obs_t_points"].shape[1]
            for key, src in (("points_t", "obs_t_points"), ("points_t1", "obs_t1_points")):
                pts = np.zeros((max_objects, n_points, 3), np.float32)
                for i in range(n):
                    pts[i] = tr[src][i][rng.choice(k, n_points, replace=k < n_points)]
                if key == "points_t1":
                    pts[:n][~seen_t1] = rows["points_t"][-1][:n][~seen_t1]
                rows[key].append(pts)
            mask = np.zeros(max_objects, bool)
            mask[:n] = True
            rows["mask"].append(mask)
            seen = np.zeros(max_objects, bool)
            seen[:n] = seen_t1
            rows["seen_t1"].append(seen)
            rows["skill"].append(int(tr["skill"]))
            rows["target"].append(int(tr["target"]))
            rows["params"].append(np.asarray(tr["params"], np.float32))
            for s, d in (("t", "t"), ("t1", "t1")):
                u = np.zeros((max_objects, 3), np.float32)
                u[:n] = tr[f"rel_{d}_unary"]
                b = np.zeros((max_objects, max_objects, 9), np.float32)
                b[:n, :n] = tr[f"rel_{d}_binary"]
                p = np.zeros((max_objects, 3), np.float32)
                p[:n] = tr[f"state_{d}_pose"][:, :3]
                rows[f"unary_{s}"].append(u)
                rows[f"binary_{s}"].append(b)
                rows[f"pos_{s}"].append(p)
    if not rows["mask"]:
        raise ValueError(f"no usable transitions in {list(map(str, folders))}")
    return {k: np.stack(v) for k, v in rows.items()}


#: Keys whose axes 1 (and 2 for binary relations) index objects.
_OBJECT_AXES = {"points_t": 1, "points_t1": 1, "mask": 1, "seen_t1": 1, "unary_t": 1, "unary_t1": 1,
                "binary_t": 2, "binary_t1": 2, "pos_t": 1, "pos_t1": 1}


def relabel_objects(arrays: dict[str, np.ndarray], rows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A copy of ``arrays`` in which each of ``rows`` (bool, (B,)) has its real objects randomly
    permuted among their own slots (segments, their relations and the skill target alike;
    padding stays where it is).

    The segment order a perception stack reports is arbitrary, but Γ sees it through the
    object identities ID_i: twenty D+ transitions around one failure all show the same
    indices (e.g. the cup in slot 3), and fine-tuned on them the model learns the effect for
    those slots only — measured on organize with 5 objects: the lesson of a failure moving
    cup 3 never reached cup 2 (0 of 20 trials). Relabelled, the same transitions teach the
    effect for every slot the scene uses. (Permuting over all ``max_objects`` slots instead
    put objects in slots pre-training never used, and fine-tuning got 5x slower and worse.)"""
    b, n = arrays["mask"].shape
    perm = np.tile(np.arange(n), (b, 1))                    # new slot of old slot k
    for r in np.flatnonzero(rows):
        real = np.flatnonzero(arrays["mask"][r])
        perm[r, real] = rng.permutation(real)
    inv = np.argsort(perm, axis=1)                          # old slot of new slot a
    out = dict(arrays)
    rows_i = np.arange(b)[:, None]
    for k, axes in _OBJECT_AXES.items():
        if k not in arrays:
            continue
        if axes == 1:
            out[k] = arrays[k][rows_i, inv]
        else:
            out[k] = arrays[k][rows_i[:, :, None], inv[:, :, None], inv[:, None, :]]
    out["target"] = perm[np.arange(b), arrays["target"]]
    return out


def _to_torch(arrays, idx, device, relabel=None, rng=None):
    """A batch, trimmed to the most objects any of its scenes has (the rest is padding); rows
    with ``relabel[idx]`` set are relabelled (:func:`relabel_objects`)."""
    batch = {k: arrays[k][idx] for k in KEYS if k in arrays}
    if relabel is not None and relabel[idx].any():
        batch = relabel_objects(batch, relabel[idx], rng)
    n = max(1, int(batch["mask"].sum(1).max()))
    out = {}
    for k in batch:
        a = batch[k]
        if _OBJECT_AXES.get(k) == 1:
            a = a[:, :n]
        elif _OBJECT_AXES.get(k) == 2:
            a = a[:, :n, :n]
        t = torch.from_numpy(np.ascontiguousarray(a))
        out[k] = (t.long() if k in ("skill", "target") else t).to(device)
    return out


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
    placements past table_b's edges "above table_b" (README, table_b_edges) — which a planner
    maximising Γ then seeks. ``x_t``: the child's Enc(O_t) of this batch (compute_losses)."""
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


def _run_epoch(model, arrays, idx, batch_size, device, opt=None, gen=None, relabel=None, rng=None,
               anchor=None):
    """One pass over ``idx`` (training when ``opt`` is given). ``anchor``: (parent model,
    weight, torch generator) adds ``weight`` x :func:`placement_anchor_loss` to training."""
    model.train(opt is not None)
    if opt is not None:
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
    sums, n = {}, 0
    with torch.set_grad_enabled(opt is not None):
        for s in range(0, len(idx), batch_size):
            b = _to_torch(arrays, idx[s:s + batch_size], device, relabel, rng)
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="f2p-train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="f2p_sim dataset folder(s)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--init-checkpoint", default=None, help="fine-tune from this checkpoint")
    p.add_argument("--replay-data", nargs="*", default=[], help="original data to mix in while fine-tuning")
    p.add_argument("--replay-fraction", type=float, default=0.0, help="fraction of each epoch from --replay-data")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--points", type=int, default=128,
                   help="points sampled per object (128 = the first set-abstraction layer's centroids)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=10, help="early stopping: epochs without val improvement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--version", default=None, help="version string (default: sha of weights)")
    p.add_argument("--config-json", default=None, help="ModelConfig overrides as JSON (pre-training only)")
    p.add_argument("--keep-unstable", action="store_true",
                   help="train on --data transitions flagged unstable too (e.g. a loaded bin resting tilted on a "
                        "table edge, penetration > max_penetration): only transitions with an unseen segment are skipped")
    p.add_argument("--keep-unseen-after", action="store_true",
                   help="--data only: keep transitions in which a segment seen in O_t is unseen in O_t+1 (an object "
                        "fell out of view); the regularisation term skips those segments (load_transitions)")
    p.add_argument("--relabel-objects", action="store_true",
                   help="present every --data transition under a fresh random permutation of its object slots each "
                        "time it is drawn (not --replay-data): the effect is learned for every object identity")
    p.add_argument("--anchor-weight", type=float, default=0.0,
                   help="fine-tuning only: weight of a term keeping the parent's predicted relations of each skill's "
                        "target after actions drawn over the whole parameter box (placement geometry; 0 = off)")
    p.add_argument("--lineage-json", default=None,
                   help="JSON object stored as training_data.lineage (e.g. the failure event a fine-tune learns from)")
    p.add_argument("--log-every", type=int, default=1, metavar="N",
                   help="print one epoch line every N epochs and after the last (default 1)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if not 0.0 <= a.replay_fraction < 1.0:
        p.error("--replay-fraction must be in [0, 1)")
    if a.replay_fraction > 0 and not a.replay_data:
        p.error("--replay-fraction needs --replay-data")
    if a.anchor_weight < 0 or not np.isfinite(a.anchor_weight):
        p.error("--anchor-weight must be a finite number >= 0")
    if a.anchor_weight > 0 and not a.init_checkpoint:
        p.error("--anchor-weight needs --init-checkpoint (the parent it anchors to)")
    if not 0.0 <= a.val_fraction < 1.0:
        p.error("--val-fraction must be in [0, 1)")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    log = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    parent = None
    if a.init_checkpoint:
        parent = load_checkpoint(a.init_checkpoint)
        cfg = parent.config
    else:
        cfg = ModelConfig(**json.loads(a.config_json)) if a.config_json else ModelConfig()
    model = build_model(cfg).to(a.device)
    if parent is not None:
        model.load_state_dict(parent.state_dict)
    data = load_transitions(a.data, a.points, cfg.max_objects, a.seed,
                            FLAG_UNSEEN_SEGMENT if a.keep_unstable else DEFAULT_SKIP_FLAGS, a.keep_unseen_after)
    n = len(data["mask"])
    perm = np.random.default_rng(a.seed).permutation(n)
    n_val = max(1, int(round(a.val_fraction * n))) if n > 1 and a.val_fraction > 0 else 0
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    n_rep, replay_rows = 0, np.zeros(0, np.int64)
    if a.replay_fraction > 0:
        # The whole replay set is kept and each epoch draws its share afresh: with a fixed draw,
        # 200 epochs over ~20 D+ and ~20 replay transitions forget everything those 20 do not show.
        replay = load_transitions(a.replay_data, a.points, cfg.max_objects, a.seed + 1)
        n_rep = int(round(a.replay_fraction / (1 - a.replay_fraction) * len(train_idx)))
        replay_rows = n + np.arange(len(replay["mask"]))
        data = {k: np.concatenate([data[k], replay[k]]) for k in KEYS}
    replay_rng = np.random.default_rng(a.seed + 2)
    relabel = np.zeros(len(data["mask"]), bool)
    relabel[:n] = a.relabel_objects
    relabel_rng = np.random.default_rng(a.seed + 3)
    log(f"[f2p-train] {len(train_idx)} train (+ {n_rep} replay of {len(replay_rows)} per epoch) / {len(val_idx)} val "
        f"transitions, device {a.device}, "
        f"{sum(p.numel() for p in model.parameters())} parameters")
    anchor = None
    if a.anchor_weight > 0:
        frozen = build_model(cfg).to(a.device).eval()
        frozen.load_state_dict(parent.state_dict)
        frozen.requires_grad_(False)
        anchor = (frozen, a.anchor_weight, torch.Generator().manual_seed(a.seed + 4))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    best, best_sd, history, stale = float("inf"), None, [], 0
    t0 = time.time()
    for ep in range(1, a.epochs + 1):
        idx = train_idx
        if n_rep:
            idx = np.concatenate([train_idx, replay_rng.choice(replay_rows, n_rep, replace=n_rep > len(replay_rows))])
        tr = _run_epoch(model, data, idx, a.batch_size, a.device, opt, gen, relabel, relabel_rng, anchor)
        va = _run_epoch(model, data, val_idx, a.batch_size, a.device) if len(val_idx) else tr
        history.append({"epoch": ep, "train": tr, "val": va})
        if ep % max(1, a.log_every) == 0 or ep == a.epochs:
            log(f"[f2p-train] epoch {ep}/{a.epochs} train {tr['total']:.4f} val {va['total']:.4f} "
                f"(det {va['detection']:.3f} reg {va['regularization']:.3f} pos {va['pos']:.3f} "
                f"pred {va['prediction']:.3f}"
                + (f" anchor {tr['anchor']:.3f}" if "anchor" in tr else "") + f") {time.time() - t0:.1f}s")
        if va["total"] < best or not len(val_idx):   # without a validation set: the last epoch's weights
            best, stale = va["total"], 0
            best_sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= a.patience:
                log(f"[f2p-train] early stop: no val improvement for {a.patience} epochs")
                break
    h = hashlib.sha256()
    for k in sorted(best_sd):
        h.update(best_sd[k].numpy().tobytes())
    version = a.version or h.hexdigest()[:16]
    ck = Checkpoint(cfg, best_sd, version, parent.version if parent else None,
                    training_data={"data": [str(Path(d)) for d in a.data], "replay_data": a.replay_data,
                                   "replay_fraction": a.replay_fraction, "transitions": int(n),
                                   "relabel_objects": a.relabel_objects, "anchor_weight": a.anchor_weight,
                                   "keep_unseen_after": a.keep_unseen_after,
                                   "points_per_object": a.points, "seed": a.seed,
                                   "lineage": json.loads(a.lineage_json) if a.lineage_json else None},
                    metrics={"best_val_total": best, "epochs_run": len(history), "lr": a.lr,
                             "history": history})
    digest = save_checkpoint(a.out, ck)
    log(f"[f2p-train] wrote {a.out} version {version} sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
