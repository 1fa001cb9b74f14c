"""Measure a skill-effect checkpoint Γ on a held-out dataset: :func:`evaluate`.

``evaluate(EvaluateConfig) -> EvaluationReport``; the command line ``f2p-evaluate`` builds the
config from its arguments. Two measurements per transition (O_t, φ_t, a_t, R_t, R_t+1):

* **detection** (current step): Dec(Enc(O_t)) against R_t, every unary and binary relation;
  precision / recall / F1 per relation and pooled over all of them (micro F1), plus the
  unweighted mean of the per-relation F1s (macro F1, relations with no positives and no
  predicted positives left out).
* **next-step prediction**: Dec(Dyn(Enc(O_t), φ_t(a_t))) against R_t+1; accuracy and F1 per
  relation. Two reference predictors are reported beside it: "unchanged" (R_t+1 := R_t, the
  ground truth of the current step) and "majority" (each relation's most frequent value in
  the evaluated set), because most relations do not change in one step and most pairs hold
  no relation, so raw accuracy alone says little.

A relation instance is one (object) for unary, one ordered pair (i ≠ j) of real objects for
binary relations; probabilities ≥ ``threshold`` (0.5) count as "holds". The metric functions
take plain arrays (``f2p_skill_effect.metrics``: :func:`relation_counts`, :func:`metrics_from_counts`;
:func:`evaluate_arrays`) so they are testable without a model.

Usage::

    f2p-evaluate --checkpoint model.pt --data HELDOUT [--max-transitions N] [--out eval.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from f2p_common.vocabulary import RELATIONS
from f2p_skill_effect.checkpoint import CheckpointError, load_model
from f2p_skill_effect.metrics import majority_prediction, metrics_from_counts, predict, relation_counts

from .train import default_device
from .transitions import load_transitions


def evaluate_arrays(model, data: dict[str, np.ndarray], threshold: float = 0.5, batch_size: int = 32,
                    device: str = "cpu") -> dict:
    du, db, nu, nb = predict(model, data, batch_size, device)
    m = data["mask"]
    maj_u, maj_b = majority_prediction(data["unary_t1"], data["binary_t1"], m)
    changed = (data["unary_t"] != data["unary_t1"]).reshape(len(m), -1).any(1) | \
        (data["binary_t"] != data["binary_t1"]).reshape(len(m), -1).any(1)
    return {
        "detection": metrics_from_counts(relation_counts(du, db, data["unary_t"], data["binary_t"], m, threshold)),
        "next_step": metrics_from_counts(relation_counts(nu, nb, data["unary_t1"], data["binary_t1"], m, threshold)),
        "next_step_baseline_unchanged": metrics_from_counts(relation_counts(
            data["unary_t"], data["binary_t"], data["unary_t1"], data["binary_t1"], m, 0.5)),
        "next_step_baseline_majority": metrics_from_counts(relation_counts(
            maj_u, maj_b, data["unary_t1"], data["binary_t1"], m, 0.5)),
        "transitions": int(len(m)),
        "transitions_with_relation_change": int(changed.sum()),
        "threshold": threshold,
    }


# --------------------------------------------------------------------------- report
def _f(x, digits=3):
    return "  –  " if x is None else f"{x:.{digits}f}"


def format_table(res: dict) -> str:
    det, nxt = res["detection"], res["next_step"]
    unch, maj = res["next_step_baseline_unchanged"], res["next_step_baseline_majority"]
    lines = [f"{'relation':<13} {'pos':>6} {'det P':>6} {'det R':>6} {'det F1':>6} | "
             f"{'next acc':>8} {'next F1':>7} | {'unch acc':>8} {'unch F1':>7} {'maj acc':>7}"]
    for name in RELATIONS:
        d, n, u, mj = det["per_relation"][name], nxt["per_relation"][name], unch["per_relation"][name], maj["per_relation"][name]
        lines.append(f"{name:<13} {d['support_pos']:>6} {_f(d['precision']):>6} {_f(d['recall']):>6} {_f(d['f1']):>6} | "
                     f"{_f(n['accuracy']):>8} {_f(n['f1']):>7} | {_f(u['accuracy']):>8} {_f(u['f1']):>7} {_f(mj['accuracy']):>7}")
    lines.append(f"{'ALL (micro)':<13} {det['per_relation'] and sum(v['support_pos'] for v in det['per_relation'].values()):>6} "
                 f"{_f(det['micro_precision']):>6} {_f(det['micro_recall']):>6} {_f(det['micro_f1']):>6} | "
                 f"{_f(nxt['accuracy']):>8} {_f(nxt['micro_f1']):>7} | {_f(unch['accuracy']):>8} {_f(unch['micro_f1']):>7} "
                 f"{_f(maj['accuracy']):>7}")
    lines.append(f"macro F1: detection {_f(det['macro_f1'])}, next step {_f(nxt['macro_f1'])}; "
                 f"{res['transitions']} transitions ({res['transitions_with_relation_change']} with a relation change), "
                 f"threshold {res['threshold']}")
    return "\n".join(lines)


def machine_info(device: str) -> dict:
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": device}


@dataclass
class EvaluateConfig:
    """checkpoint, data (held-out dataset folders); max_transitions: only the first N; points:
    per object (None: the checkpoint's own); threshold: p that counts as "holds"; seed: point
    resampling."""

    checkpoint: str | Path
    data: Sequence[str | Path]
    max_transitions: int | None = None
    points: int | None = None
    threshold: float = 0.5
    batch_size: int = 32
    seed: int = 0
    device: str = field(default_factory=default_device)

    def validate(self) -> None:
        if self.max_transitions is not None and self.max_transitions < 1:
            raise ValueError("max_transitions must be >= 1")
        if not self.data:
            raise ValueError("no dataset folders to evaluate on")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


@dataclass
class EvaluationReport:
    """The :func:`evaluate_arrays` scores of one checkpoint on one dataset, with provenance."""

    scores: dict
    checkpoint: str
    checkpoint_version: str
    checkpoint_training_data: dict
    checkpoint_epochs_run: int | None
    data: list[str]
    points_per_object: int
    machine: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**self.scores, "machine": self.machine, "checkpoint": self.checkpoint,
                "checkpoint_version": self.checkpoint_version, "checkpoint_training_data": self.checkpoint_training_data,
                "checkpoint_epochs_run": self.checkpoint_epochs_run, "data": self.data,
                "points_per_object": self.points_per_object, "eval_seconds": self.seconds}


def evaluate(cfg: EvaluateConfig) -> EvaluationReport:
    """Detection and next-step scores of ``cfg.checkpoint`` on ``cfg.data`` (module docstring)."""
    cfg.validate()
    t0 = time.time()
    model, ck = load_model(cfg.checkpoint)
    model.to(cfg.device)
    n_points = cfg.points or int(ck.training_data.get("points_per_object", 256))
    data = load_transitions(cfg.data, n_points, ck.config.max_objects, cfg.seed)
    if cfg.max_transitions is not None:
        data = {k: v[:cfg.max_transitions] for k, v in data.items()}
    scores = evaluate_arrays(model, data, cfg.threshold, cfg.batch_size, cfg.device)
    return EvaluationReport(scores, str(cfg.checkpoint), ck.version, ck.training_data, ck.metrics.get("epochs_run"),
                            [str(d) for d in cfg.data], n_points, machine_info(cfg.device), time.time() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="f2p-evaluate", description=__doc__.split("\n\n")[0])
    d = EvaluateConfig(checkpoint="", data=[])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", nargs="+", required=True, help="held-out dataset folder(s)")
    p.add_argument("--max-transitions", type=int, default=None, help="evaluate only the first N transitions")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--points", type=int, default=None, help="points per object (default: the checkpoint's)")
    p.add_argument("--threshold", type=float, default=d.threshold)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seed", type=int, default=d.seed, help="point resampling seed")
    p.add_argument("--device", default=d.device)
    a = p.parse_args(argv)
    cfg = EvaluateConfig(a.checkpoint, a.data, a.max_transitions, a.points, a.threshold, a.batch_size, a.seed, a.device)
    try:
        cfg.validate()
        report = evaluate(cfg)
    except (ValueError, OSError, CheckpointError) as e:
        print(f"f2p-evaluate: error: {e}", file=sys.stderr)
        return 2
    res = {"command": "f2p-evaluate " + " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv)),
           **report.to_json()}
    print(format_table(res))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        print(f"[f2p-evaluate] wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
