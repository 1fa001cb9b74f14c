#!/usr/bin/env python3
"""Benchmark of simulated dataset generation (f2p_datasets.datagen), run by ``make bench-sim``.

Generates a dataset of randomised transitions (s_t, O_t, φ_t, a_t, s_t+1, O_t+1, R_t, R_t+1)
from the three paper tasks (paper 000 §3, A.2) with all cores, then again with one worker,
and writes ``benchmarks/results/sim_datagen.json`` and ``sim_datagen.md``:
transitions per second (total and per core), points per cloud (raw ray hits on segments
and stored fixed-size points), flagged fraction, and the projected time for the paper's
40,000-transition pre-training set.

Usage: python benchmarks/sim_datagen.py [--transitions 1200] [--workers N] [--seed 0]
                                        [--results-dir benchmarks/results] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from f2p_common import dataset as ds
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate

PAPER_PRETRAIN_TRANSITIONS = 40_000
TARGET_PER_CORE = 20.0
TARGET_POINTS = 2000


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(params: DatagenParams, folder: Path, workers: int) -> tuple[float, dict]:
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    result = generate(DatagenConfig(folder, params, workers=workers, progress=True))
    return time.perf_counter() - start, result.manifest


def cloud_stats(folder: Path) -> dict:
    raw, stored = [], []
    for arrays in ds.SimDataset(folder).shards():
        segs = (arrays["seg_class"] >= 0).sum(axis=1)
        for tag in ("t", "t1"):
            raw.append(arrays[f"obs_{tag}_counts"].sum(axis=1))
            stored.append(segs * arrays[f"obs_{tag}_points"].shape[2])
    raw, stored = np.concatenate(raw), np.concatenate(stored)
    return {"raw_mean": float(raw.mean()), "raw_min": int(raw.min()), "stored_mean": float(stored.mean()),
            "stored_min": int(stored.min()), "clouds": int(raw.size)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transitions", type=int, default=1200)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--keep", default=None, help="keep the generated dataset in this folder")
    args = p.parse_args(argv)
    cores = max(1, args.workers)
    tmp = Path(tempfile.mkdtemp(prefix="f2p_bench_sim_"))
    try:
        params = DatagenParams(transitions=args.transitions, shard_size=50, seed=args.seed)
        seconds, manifest = run(params, tmp / "all_cores", cores)
        stats = cloud_stats(tmp / "all_cores")
        single_n = max(50, args.transitions // 4)
        single = DatagenParams(transitions=single_n, shard_size=50, seed=args.seed + 1)
        single_seconds, _ = run(single, tmp / "one_core", 1)
        if args.keep:
            shutil.copytree(tmp / "all_cores", args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = manifest["transitions"] / seconds
    per_core = rate / cores
    import mujoco
    result = {
        "benchmark": "sim_datagen",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": cpu_model(), "cores_available": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "mujoco": mujoco.__version__, "numpy": np.__version__},
        "cores": cores,
        "seed": args.seed,
        "transitions": manifest["transitions"],
        "seconds": round(seconds, 3),
        "transitions_per_second": round(rate, 2),
        "transitions_per_second_per_core": round(per_core, 2),
        "single_worker": {"transitions": single_n, "seconds": round(single_seconds, 3),
                          "transitions_per_second": round(single_n / single_seconds, 2)},
        "points_per_cloud": round(stats["raw_mean"], 1),
        "points_per_cloud_min": stats["raw_min"],
        "stored_points_per_cloud": round(stats["stored_mean"], 1),
        "stored_points_per_cloud_min": stats["stored_min"],
        "clouds_per_transition": 2,
        "points_per_segment": params.points_per_segment,
        "flagged_fraction": round(manifest["flagged"] / manifest["transitions"], 4),
        "projected_seconds_for_40000": round(PAPER_PRETRAIN_TRANSITIONS / rate, 1),
        "targets": {"transitions_per_second_per_core": TARGET_PER_CORE, "points_per_cloud": TARGET_POINTS,
                    "seconds_for_40000": 3600},
        "parameters": manifest["params"],
        "notes": ("points_per_cloud = mean ray hits on scene segments per observation (O_t and O_t+1 each); "
                  "stored_points_per_cloud = segments x points_per_segment after fixed-size resampling. "
                  "Per-core rate = all-core rate / cores; single_worker measures one process alone."),
    }
    result["meets_targets"] = bool(per_core >= TARGET_PER_CORE and stats["raw_min"] >= TARGET_POINTS
                                   and result["projected_seconds_for_40000"] < 3600)
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_datagen.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    md = [
        "# sim_datagen — simulated transition generation (f2p_datasets.datagen)",
        "",
        f"Machine: {result['machine']['cpu']}, {cores} worker(s) of {os.cpu_count()} cores, "
        f"MuJoCo {mujoco.__version__}. Command: `{result['command']}`",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| transitions generated | {result['transitions']} in {result['seconds']:.1f} s | |",
        f"| transitions / s (all workers) | {rate:.1f} | |",
        f"| transitions / s / core | {per_core:.1f} | >= {TARGET_PER_CORE:.0f} |",
        f"| transitions / s, one worker alone | {result['single_worker']['transitions_per_second']:.1f} | |",
        f"| points per cloud (raw hits, mean / min) | {stats['raw_mean']:.0f} / {stats['raw_min']} | >= {TARGET_POINTS} |",
        f"| stored points per cloud (mean / min) | {stats['stored_mean']:.0f} / {stats['stored_min']} | |",
        f"| flagged transitions | {100 * result['flagged_fraction']:.1f} % | |",
        f"| projected time for 40,000 transitions | {result['projected_seconds_for_40000'] / 60:.1f} min | < 60 min |",
        "",
        f"Meets targets: **{'yes' if result['meets_targets'] else 'no'}**. Each transition holds two clouds "
        "(O_t, O_t+1), relations R_t, R_t+1 and states s_t, s_t+1. Flagged transitions (unstable "
        "physics, refused skills, segments without points) are kept and marked, see f2p_sim.dataset.",
        "",
    ]
    (out / "sim_datagen.md").write_text("\n".join(md), encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("transitions_per_second_per_core", "points_per_cloud", "points_per_cloud_min",
                                             "projected_seconds_for_40000", "meets_targets")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
