"""The admission probe: a fixed, labelled set of simulated transitions a model must score on
before it may serve (issue 43: a validly signed model with NaN, zeroed or random weights is still
garbage; only running it says so).

The probe is package data, ``share/f2p_skill_effect/models/admission_probe.npz`` (how it was made:
``models/README.md``): an npz of plain arrays (no pickles; ``allow_pickle=False``) with T
transitions of at most S objects, K points each:

==============  ===============  =============================================
name            shape, dtype     meaning
==============  ===============  =============================================
points_t        (T,S,K,3) f32    O_t: per-object points (world frame, m)
mask            (T,S) bool       real objects (the rest is padding)
skill           (T,) int64       φ_t, index in the vocabulary's skill order
target          (T,) int64       the object the skill acts on
params          (T,3) f32        a_t, zero-padded
unary_t/_t1     (T,S,3) f32      R_t / R_t+1 unary relations, 0/1
binary_t/_t1    (T,S,S,9) f32    R_t / R_t+1 binary relations, 0/1
==============  ===============  =============================================

:func:`probe_scores` runs a model's detection and one-step prediction on it
(``f2p_skill_effect.metrics.predict``): are all outputs finite probabilities, what is the
detection micro F1 (paper 000 §3's Dec(Enc(O_t)) against R_t) and the next-step accuracy. A
model of the shipped recipe scores about 0.96 / 0.97 on it; random or zeroed weights 0.26-0.28 /
0.17-0.42 (measured on the four shipped checkpoints). No ROS.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from f2p_common.files import write_atomic
from f2p_common.resources import share_path
from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS

from .metrics import metrics_from_counts, predict, relation_counts

PROBE_FILE = "admission_probe.npz"
PROBE_KEYS = ("points_t", "mask", "skill", "target", "params", "unary_t", "binary_t", "unary_t1", "binary_t1")


@dataclass(frozen=True)
class ProbeScores:
    """A model on the probe: ``finite`` (every output a finite probability), ``detection_f1``
    (micro F1 of detection on O_t), ``next_step_accuracy`` (accuracy of R_t+1), ``transitions``."""

    finite: bool
    detection_f1: float
    next_step_accuracy: float
    transitions: int


def shipped_probe() -> Path:
    """The probe installed with ``f2p_skill_effect`` (ResourceNotFoundError if not built)."""
    return share_path("f2p_skill_effect", "models", PROBE_FILE)


def load_probe(path: str | os.PathLike, max_objects: int) -> dict[str, np.ndarray]:
    """The probe's arrays, padded to ``max_objects`` (ValueError for a malformed file or a probe
    with more objects than that)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in PROBE_KEYS}
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not an admission probe ({type(e).__name__}: {e})") from None
    t, s = data["mask"].shape
    nu, nb = len(UNARY_RELATIONS), len(BINARY_RELATIONS)
    want = {"points_t": (t, s, None, 3), "skill": (t,), "target": (t,), "params": (t, 3), "unary_t": (t, s, nu),
            "unary_t1": (t, s, nu), "binary_t": (t, s, s, nb), "binary_t1": (t, s, s, nb)}
    for k, shape in want.items():
        got = data[k].shape
        if len(got) != len(shape) or any(w is not None and g != w for g, w in zip(got, shape)):
            raise ValueError(f"{path}: {k} has shape {got}, expected {shape}")
    if not (0 <= data["skill"]).all() or not (data["skill"] < len(SKILLS)).all():
        raise ValueError(f"{path}: skill indices outside the vocabulary")
    if s > max_objects:
        raise ValueError(f"{path}: the probe has scenes of {s} objects, the model takes {max_objects}")
    pad = max_objects - s

    def padded(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        widths = [(0, pad if i in axes else 0) for i in range(a.ndim)]
        return np.pad(a, widths)
    out = {"points_t": padded(data["points_t"].astype(np.float32), (1,)), "mask": padded(data["mask"].astype(bool), (1,)),
           "skill": data["skill"].astype(np.int64), "target": data["target"].astype(np.int64),
           "params": data["params"].astype(np.float32)}
    for k in ("unary_t", "unary_t1"):
        out[k] = padded(data[k].astype(np.float32), (1,))
    for k in ("binary_t", "binary_t1"):
        out[k] = padded(data[k].astype(np.float32), (1, 2))
    return out


def probe_scores(model, probe: dict[str, np.ndarray]) -> ProbeScores:
    """``model`` on the probe (module docstring); a model whose outputs are not all finite
    probabilities scores 0."""
    with torch.no_grad():
        du, db, nu, nb = predict(model, probe)
    m = probe["mask"]
    outputs = (du[m], db[m], nu[m], nb[m])
    finite = all(np.isfinite(o).all() and (o >= 0).all() and (o <= 1).all() for o in outputs)
    if not finite:
        return ProbeScores(False, 0.0, 0.0, len(m))
    det = metrics_from_counts(relation_counts(du, db, probe["unary_t"], probe["binary_t"], m))
    nxt = metrics_from_counts(relation_counts(nu, nb, probe["unary_t1"], probe["binary_t1"], m))
    return ProbeScores(True, float(det["micro_f1"] or 0.0), float(nxt["accuracy"] or 0.0), len(m))


def write_probe(path: str | os.PathLike, data: dict[str, np.ndarray], transitions: int) -> Path:
    """Write the first ``transitions`` rows of padded transition arrays (``f2p_training``'s
    ``load_transitions``) as a probe, trimmed to the most objects any of them has."""
    rows = {k: np.asarray(data[k][:transitions]) for k in PROBE_KEYS}
    s = int(rows["mask"].sum(1).max())
    trimmed = {k: (v[:, :s, :s] if k.startswith("binary") else v[:, :s] if v.ndim > 1 and k != "params" else v)
               for k, v in rows.items()}
    trimmed["points_t"] = trimmed["points_t"].astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **trimmed)
    return write_atomic(path, buf.getvalue())
