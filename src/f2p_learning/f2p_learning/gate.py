"""The learner's regression gate (paper 000 §5's validation before a child is deployed), for the
learner's own children and for ``f2p-gate``: a model trained outside the learner
(``f2p_training.train``, a recipe of ``f2p_skill_effect/models/README.md``) is a child of its
``parent_version``, and the planner admits a child only with ``metrics.deployable: true``, which
only this gate writes.

    f2p-gate model.pt --reference skill_effect_pretrained.pt --regression-data held_out/ [--out gated.pt]

``gate_checkpoint(GateConfig) -> GateResult`` is the same as a library call. The checkpoint is
rewritten (atomically; ``--out`` elsewhere) with ``metrics.regression_gate`` and
``metrics.deployable``; its version stays. Exit codes: 0 deployable, 1 not deployable, 2 bad
input (a checkpoint that does not load, another architecture, no usable transitions).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from f2p_skill_effect.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, model_from_checkpoint, \
    save_checkpoint
from f2p_training.evaluate import evaluate_arrays
from f2p_training.transitions import load_transitions

EXIT_DEPLOYABLE, EXIT_NOT_DEPLOYABLE, EXIT_BAD_INPUT = 0, 1, 2


def regression_gate(reference_model, child_model, data: dict, tolerance: float,
                    floors: dict[str, float] | None = None) -> dict:
    """The child against the model deployed on the robot (``reference_model``) on held-out
    ``data`` (detection micro F1, next-step accuracy and F1): deployable when its worst drop stays
    within ``tolerance`` and it reaches every ``floors`` metric (an absolute floor: a child worse
    than it is never deployable, whatever the model it replaces; issue 43: a random-weight parent
    let a random-weight child through)."""
    def scores(model) -> dict:
        res = evaluate_arrays(model, data)
        return {"detection_f1": res["detection"]["micro_f1"], "next_step_accuracy": res["next_step"]["accuracy"],
                "next_step_f1": res["next_step"]["micro_f1"], "transitions": res["transitions"]}
    before, after = scores(reference_model), scores(child_model)
    drop = max(before["detection_f1"] - after["detection_f1"], before["next_step_accuracy"] - after["next_step_accuracy"])
    floors = dict(floors or {})
    below = {k: [after[k], v] for k, v in floors.items() if not (after[k] or 0.0) >= v}
    reasons = ([f"worst drop {drop:.3f} > tolerance {tolerance:g}"] if drop > tolerance else []) + [
        f"{k} {got:.3f} below its floor {floor:g}" for k, (got, floor) in below.items()]
    return {"tolerance": tolerance, "reference": before, "child": after, "worst_drop": drop, "floors": floors,
            "below_floor": below, "deployable": not reasons,
            "reason": "; ".join(reasons) if reasons else "within tolerance of the deployed model, above every floor"}


class GateInputError(ValueError):
    """A checkpoint or the regression data cannot be used; the message says which."""


@dataclass
class GateConfig:
    """checkpoint: the child (a path or a shipped model's name); reference_checkpoint: the model
    deployed on the robot it would replace ('' = the child's parent among the shipped models);
    regression_data: held-out dataset folders (f2p_datasets.datagen, never the training data);
    out: where the gated child goes (None = in place); tolerance, min_detection_f1,
    min_next_step_accuracy: the learner's regression_tolerance and floors; seed: point
    resampling of the data."""

    checkpoint: str | Path
    regression_data: list[str | Path] = field(default_factory=list)
    reference_checkpoint: str | Path = ""
    out: str | Path | None = None
    tolerance: float = 0.02
    min_detection_f1: float = 0.85
    min_next_step_accuracy: float = 0.85
    seed: int = 0


@dataclass
class GateResult:
    """deployable, the gate's record (also in the checkpoint's metrics), where the gated child
    was written and its file SHA-256."""

    deployable: bool
    gate: dict
    path: Path
    sha256: str


def _shipped_parent(version: str) -> Path:
    from f2p_skill_effect.checkpoint import SHIPPED_MODELS, shipped_model
    for name in SHIPPED_MODELS:
        if load_checkpoint(shipped_model(name)).version == version:
            return shipped_model(name)
    raise GateInputError(f"the parent {version} is not a shipped model: name the deployed model (reference)")


def gate_checkpoint(cfg: GateConfig) -> GateResult:
    """Run the regression gate on ``cfg.checkpoint`` and write its verdict into it."""
    if not cfg.regression_data:
        raise GateInputError("no regression data: a child is never deployable unvalidated")
    try:
        child = load_checkpoint(checkpoint_path(str(cfg.checkpoint)))
        if not child.parent_version:
            raise GateInputError(f"{cfg.checkpoint} has no parent_version: the planner admits it ungated")
        ref_path = (checkpoint_path(str(cfg.reference_checkpoint)) if cfg.reference_checkpoint
                    else _shipped_parent(child.parent_version))
        reference = load_checkpoint(ref_path, child.config)
        child_model, reference_model = model_from_checkpoint(child), model_from_checkpoint(reference)
    except CheckpointError as exc:
        raise GateInputError(str(exc)) from None
    points = int(child.training_data.get("points_per_object", 128))
    data = load_transitions([str(d) for d in cfg.regression_data], points, child.config.max_objects, cfg.seed)
    if not len(next(iter(data.values()), ())):
        raise GateInputError(f"no usable transitions in {', '.join(map(str, cfg.regression_data))}")
    gate = regression_gate(reference_model, child_model, data, cfg.tolerance,
                           {"detection_f1": cfg.min_detection_f1, "next_step_accuracy": cfg.min_next_step_accuracy})
    gate["reference_version"] = reference.version
    child.metrics = {**child.metrics, "regression_gate": gate, "deployable": gate["deployable"]}
    out = Path(cfg.out) if cfg.out else checkpoint_path(str(cfg.checkpoint))
    digest = save_checkpoint(out, child)
    return GateResult(gate["deployable"], gate, out, digest)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="f2p-gate", description=__doc__.split("\n\n")[0])
    d = GateConfig.__dataclass_fields__
    p.add_argument("checkpoint")
    p.add_argument("--regression-data", nargs="+", required=True, help="held-out dataset folders")
    p.add_argument("--reference", default="", help="the deployed model ('' = the child's shipped parent)")
    p.add_argument("--out", default=None, help="default: rewrite the checkpoint in place")
    p.add_argument("--tolerance", type=float, default=d["tolerance"].default)
    p.add_argument("--min-detection-f1", type=float, default=d["min_detection_f1"].default)
    p.add_argument("--min-next-step-accuracy", type=float, default=d["min_next_step_accuracy"].default)
    p.add_argument("--seed", type=int, default=d["seed"].default)
    a = p.parse_args(argv)
    try:
        res = gate_checkpoint(GateConfig(a.checkpoint, a.regression_data, a.reference, a.out, a.tolerance,
                                         a.min_detection_f1, a.min_next_step_accuracy, a.seed))
    except (GateInputError, OSError) as exc:
        print(f"f2p-gate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps({k: res.gate[k] for k in ("reference", "child", "worst_drop", "deployable", "reason")}, indent=1))
    print(f"f2p-gate: {'deployable' if res.deployable else 'NOT deployable'}; wrote {res.path} (sha256 {res.sha256})")
    return EXIT_DEPLOYABLE if res.deployable else EXIT_NOT_DEPLOYABLE


if __name__ == "__main__":
    sys.exit(main())
