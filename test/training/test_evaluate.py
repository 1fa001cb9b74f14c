"""Evaluation of Γ: the metric functions on hand-made arrays (perfect predictor → F1 = 1, known
counts, padding and the diagonal ignored), ``evaluate(EvaluateConfig)`` and the ``f2p-evaluate``
command line end to end on a tiny random-init checkpoint and a tiny synthetic dataset."""
import json

import numpy as np
import pytest
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS
from f2p_skill_effect.checkpoint import Checkpoint, save_checkpoint
from f2p_common.vocabulary import RELATIONS as RELATION_NAMES
from f2p_skill_effect.model import build_model
from f2p_skill_effect.metrics import metrics_from_counts, relation_counts
from f2p_training.evaluate import EvaluateConfig, evaluate, main

from support.synthetic import TINY
from support.synthetic import write_dataset as _write_dataset

U, B = len(UNARY_RELATIONS), len(BINARY_RELATIONS)


def _labels(seed=0, T=5, N=4, n=3):
    rng = np.random.default_rng(seed)
    lu = rng.integers(0, 2, (T, N, U)).astype(np.float32)
    lb = rng.integers(0, 2, (T, N, N, B)).astype(np.float32)
    mask = np.zeros((T, N), bool)
    mask[:, :n] = True
    return lu, lb, mask


def test_perfect_predictor_has_f1_one():
    lu, lb, mask = _labels()
    m = metrics_from_counts(relation_counts(lu, lb, lu, lb, mask))
    assert m["micro_f1"] == 1.0 and m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert set(m["per_relation"]) == set(RELATION_NAMES)
    for s in m["per_relation"].values():
        assert s["fp"] == 0 and s["fn"] == 0 and s["accuracy"] == 1.0
        assert s["f1"] in (1.0, None)          # None only where a relation never holds
    # instances: 5 transitions × 3 real objects (unary), × 3·2 ordered pairs (binary)
    assert m["instances"] == 5 * 3 * U + 5 * 6 * B
    # padding and the diagonal do not count, whatever is predicted there
    pu, pb = lu.copy(), lb.copy()
    pu[:, 3] = 1 - pu[:, 3]
    pb[:, 3] = 1 - pb[:, 3]
    idx = np.arange(4)
    pb[:, idx, idx] = 1 - pb[:, idx, idx]
    assert metrics_from_counts(relation_counts(pu, pb, lu, lb, mask))["micro_f1"] == 1.0


def test_known_counts_and_ranges():
    lu, lb, mask = _labels(1)
    probs_u = np.full_like(lu, 0.9)            # predicts everything true
    probs_b = np.full_like(lb, 0.1)            # predicts everything false
    m = metrics_from_counts(relation_counts(probs_u, probs_b, lu, lb, mask))
    for name in UNARY_RELATIONS:
        s = m["per_relation"][name]
        assert s["recall"] == 1.0 and s["fn"] == 0 and s["tn"] == 0
        assert s["precision"] == pytest.approx(s["support_pos"] / s["instances"])
    for name in BINARY_RELATIONS:
        s = m["per_relation"][name]
        assert s["tp"] == 0 and s["fp"] == 0 and s["f1"] in (0.0, None) and s["precision"] is None
    for key in ("micro_f1", "micro_precision", "micro_recall", "accuracy", "macro_f1"):
        assert 0.0 <= m[key] <= 1.0
    with pytest.raises(ValueError):
        relation_counts(lu[..., :2], lb, lu, lb, mask)


def test_cli_on_tiny_random_model(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d", 3)
    torch.manual_seed(0)
    model = build_model(TINY)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ck = tmp_path / "m.pt"
    save_checkpoint(ck, Checkpoint(TINY, sd, "rand", training_data={"points_per_object": 32}))
    out = tmp_path / "eval.json"
    assert main(["--checkpoint", str(ck), "--data", str(data), "--max-transitions", "6", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ALL (micro)" in text and "in_contact" in text
    res = json.loads(out.read_text())
    assert res["transitions"] == 6 and res["points_per_object"] == 32
    assert "--max-transitions 6" in res["command"] and res["machine"]["cpu_count"] >= 1
    for part in ("detection", "next_step", "next_step_baseline_unchanged", "next_step_baseline_majority"):
        r = res[part]
        assert set(r["per_relation"]) == set(RELATION_NAMES)
        # 6 transitions × 3 objects: 18 unary, 36 ordered pairs per relation
        assert r["instances"] == 18 * U + 36 * B
        for s in r["per_relation"].values():
            assert 0.0 <= s["accuracy"] <= 1.0 and (s["f1"] is None or 0.0 <= s["f1"] <= 1.0)


def test_evaluate_library_call_and_bad_input(tmp_path):
    data = _write_dataset(tmp_path / "d", 3)
    torch.manual_seed(0)
    ck = tmp_path / "m.pt"
    save_checkpoint(ck, Checkpoint(TINY, build_model(TINY).state_dict(), "rand", training_data={"points_per_object": 32}))
    report = evaluate(EvaluateConfig(ck, [data], max_transitions=4))
    assert report.scores["transitions"] == 4 and report.checkpoint_version == "rand" and report.points_per_object == 32
    assert set(report.to_json()) >= {"detection", "next_step", "machine", "checkpoint_version", "eval_seconds"}
    with pytest.raises(ValueError, match="max_transitions"):
        evaluate(EvaluateConfig(ck, [data], max_transitions=0))
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(data)]) == 2
