"""AFIL's data and training at a small size (f2p_datasets.afil_data, f2p_training.afil): demonstrations, online failure
rollouts with failure-corrected trajectories, chunked datasets, the DAG trained on both, its
evaluation; and ``make bench-afil`` run small as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from f2p_afil.checkpoint import load_controller
from f2p_afil.controller import AfilController
from f2p_afil.observation import CHUNK, FEATURE_DIM
from f2p_afil.policy import DAGPolicy, Guidance, PolicyConfig
from f2p_datasets.afil_data import DataConfig, Trajectory, collect, evaluate
from f2p_training.afil import TrainConfig, chunk_dataset, train_policy

ROOT = Path(__file__).resolve().parents[2]
SMALL = PolicyConfig(hidden=32, embedding=16)


def test_chunks_pad_past_the_end_with_holding_still():
    t = Trajectory("push", 0, "push", np.zeros((3, FEATURE_DIM), np.float32),
                   np.array([[1, 0, 0, -1], [0, 1, 0, -1], [0, 0, 1, 1]], np.float32))
    f, c = chunk_dataset([t])
    assert f.shape == (3, FEATURE_DIM) and c.shape == (3, CHUNK, 4)
    assert np.array_equal(c[0, :3], t.actions) and np.array_equal(c[2, 1:], np.tile([0, 0, 0, 1], (CHUNK - 1, 1)))


def test_demonstrations_failure_rollouts_corrections_and_the_dag():
    torch.set_num_threads(1)
    demos = collect(DataConfig(tasks=("pick_place", "push_stack"), n=2))
    assert len(demos) == 4 and all(r.trajectories for r in demos)
    good = [t for r in demos for t in r.trajectories if t.result.success]
    assert good and all(len(t.feats) == len(t.actions) > 10 for t in good)
    # an untrained policy fails: its rollouts are failures, and the demonstrator corrects them
    ctl = AfilController(DAGPolicy(SMALL), Guidance("none"))
    runs = collect(DataConfig(tasks=("pick_place",), n=2, seed_start=1000, corrections=2), act=ctl)
    failed = [t for r in runs for t in r.trajectories if not t.result.success]
    corrections = [t for r in runs for t in r.corrections]
    assert failed and corrections and all(t.result.success for t in corrections)
    assert all(r.failure in ("missed_grasp", "misplaced", "dropped", "toppled") for r in runs)
    result = train_policy(chunk_dataset(good + corrections), chunk_dataset(failed), TrainConfig(steps=20, batch=16,
                                                                                                  policy=SMALL))
    assert result.failure_samples > 0 and result.final_loss["failure"] is not None
    out = evaluate(result.policy, Guidance("adaptive", 1.0), "pick_place", range(100000, 100002))
    assert out["n"] == 2 and 0.0 <= out["success"] <= 1.0


def test_the_benchmark_runs_small_and_ships_a_loadable_controller(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ship = tmp_path / "afil.pt"
    r = subprocess.run([sys.executable, "benchmarks/afil.py", "--demos", "2", "--rollouts", "2", "--trials", "2",
                        "--ood-trials", "1", "--lambda-trials", "1", "--val-trials", "1", "--steps", "20", "--latency-calls", "5",
                        "--threads", "1", "--results", str(tmp_path), "--ship", str(ship)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads((tmp_path / "afil.json").read_text())
    assert set(report["table1"]) == {"success_only", "failure_correction", "static_fil", "adaptive_fil"}
    assert all(len(v) == 5 for v in report["table1"].values()) and set(report["ood"]) == {"size", "mass", "friction", "clutter"}
    assert set(report["lambda_ablation"]["push"]) == {"0.5", "1.0", "2.0", "5.0"}
    assert report["latency_ms"]["adaptive"]["mean_ms"] > 0
    assert (tmp_path / "afil.md").read_text().startswith("# AFIL") and (tmp_path / "afil.png").exists()
    policy, ckpt = load_controller(ship)
    assert "pick_place" in ckpt.training["skills"] and ckpt.metrics["table1"]
