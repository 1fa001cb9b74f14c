"""Scores of a skill-effect model's relations against labels: the one home of f2p's relation
metrics (training's evaluation, the learner's regression gate, the planner's admission probe).

A relation instance is one (object) for unary, one ordered pair (i != j) of real objects for
binary relations; probabilities >= ``threshold`` (0.5) count as "holds". :func:`relation_counts`
and :func:`metrics_from_counts` take plain arrays (testable without a model); :func:`predict`
runs a model's detection (Dec(Enc(O_t))) and one-step prediction (Dec(Dyn(Enc(O_t), φ_t(a_t))),
paper 000 §3) over padded transition arrays. No ROS, no training code.
"""
from __future__ import annotations

import numpy as np
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS

from .model import Observation, SkillBatch


def _valid_masks(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) object mask → unary (T, N) and binary (T, N, N) instance masks (no diagonal)."""
    mask = np.asarray(mask, bool)
    n = mask.shape[1]
    pair = mask[:, :, None] & mask[:, None, :] & ~np.eye(n, dtype=bool)[None]
    return mask, pair


def relation_counts(prob_unary, prob_binary, label_unary, label_binary, mask,
                    threshold: float = 0.5) -> dict[str, dict[str, int]]:
    """Confusion counts per relation (vocabulary order) over real instances.

    ``prob_*``/``label_*``: unary (T, N, U), binary (T, N, N, B) — probabilities (or 0/1
    predictions) and 0/1 labels; ``mask`` (T, N) True for real objects."""
    pu, pb = np.asarray(prob_unary) >= threshold, np.asarray(prob_binary) >= threshold
    lu, lb = np.asarray(label_unary) > 0.5, np.asarray(label_binary) > 0.5
    if pu.shape != lu.shape or pb.shape != lb.shape:
        raise ValueError(f"prediction/label shapes differ: {pu.shape} vs {lu.shape}, {pb.shape} vs {lb.shape}")
    if pu.shape[-1] != len(UNARY_RELATIONS) or pb.shape[-1] != len(BINARY_RELATIONS):
        raise ValueError("last axes must be the vocabulary's unary and binary relations")
    vu, vb = _valid_masks(mask)
    out = {}
    for preds, labels, valid, names in ((pu, lu, vu, UNARY_RELATIONS), (pb, lb, vb, BINARY_RELATIONS)):
        for k, name in enumerate(names):
            p, l = preds[..., k][valid], labels[..., k][valid]
            out[name] = {"tp": int(np.sum(p & l)), "fp": int(np.sum(p & ~l)),
                         "fn": int(np.sum(~p & l)), "tn": int(np.sum(~p & ~l))}
    return out


def _scores(c: dict[str, int]) -> dict:
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    # F1 is undefined when there is nothing to find and nothing was predicted.
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
    return {"precision": prec, "recall": rec, "f1": f1, "accuracy": (tp + tn) / n if n else None,
            "support_pos": tp + fn, "instances": n, **c}


def metrics_from_counts(counts: dict[str, dict[str, int]]) -> dict:
    """Per-relation scores, micro F1 / accuracy pooled over all relations, macro F1."""
    per = {name: _scores(c) for name, c in counts.items()}
    total = {k: sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn", "tn")}
    pooled = _scores(total)
    f1s = [s["f1"] for s in per.values() if s["f1"] is not None]
    return {"per_relation": per, "micro_f1": pooled["f1"], "micro_precision": pooled["precision"],
            "micro_recall": pooled["recall"], "accuracy": pooled["accuracy"],
            "macro_f1": float(np.mean(f1s)) if f1s else None, "instances": pooled["instances"]}


def majority_prediction(label_unary, label_binary, mask):
    """Each relation's most frequent value over the real instances, broadcast (a baseline)."""
    vu, vb = _valid_masks(mask)
    lu, lb = np.asarray(label_unary) > 0.5, np.asarray(label_binary) > 0.5
    mu = np.array([lu[..., k][vu].mean() >= 0.5 if vu.any() else False for k in range(lu.shape[-1])])
    mb = np.array([lb[..., k][vb].mean() >= 0.5 if vb.any() else False for k in range(lb.shape[-1])])
    return np.broadcast_to(mu, lu.shape).astype(np.float32), np.broadcast_to(mb, lb.shape).astype(np.float32)


# --------------------------------------------------------------------------- model pass
@torch.no_grad()
def predict(model, data: dict[str, np.ndarray], batch_size: int = 32, device: str = "cpu"):
    """Detection on O_t and one-step prediction for every transition: four arrays
    (det_unary, det_binary, next_unary, next_binary) of probabilities."""
    model.eval()
    outs = {k: [] for k in ("du", "db", "nu", "nb")}
    n = len(data["mask"])
    for s in range(0, n, batch_size):
        sl = slice(s, s + batch_size)
        mask = torch.from_numpy(data["mask"][sl]).to(device)
        obs = Observation(torch.from_numpy(data["points_t"][sl]).to(device), mask)
        skill = SkillBatch(torch.from_numpy(data["skill"][sl]).long().to(device),
                           torch.from_numpy(data["target"][sl]).long().to(device),
                           torch.from_numpy(data["params"][sl]).to(device))
        x = model.encode(obs)
        det = model.detect(x, mask)
        nxt = model.detect(model.step(x, mask, skill), mask)
        for k, t in (("du", det.unary), ("db", det.binary), ("nu", nxt.unary), ("nb", nxt.binary)):
            outs[k].append(t.cpu().numpy())
    return tuple(np.concatenate(outs[k]) for k in ("du", "db", "nu", "nb"))
