"""AFIL, measured (issue 33; paper 003 Tables 1, 2, 4): the four rows of Table 1 on f2p's skills
in the MuJoCo world, out of domain, the guidance-scale ablation, sampling latency and training time.

Pipeline (all seeds fixed; data ``f2p_datasets.afil_data``, training ``f2p_training.afil``):

1. success demonstrations: the demonstrator on ``--demos`` training scenes of each task
   (seeds 0..), failed demonstrations dropped;
2. **Success-only**: the policy trained on them (success generator alone, no guidance);
3. failure rollouts, online: the success-only policy on ``--rollouts`` more training scenes per
   task (seeds 1000..); every failed skill's trajectory is kept, and the demonstrator replans
   from two of its chunk-start states (failure correction);
4. **+ Failure Correction**: trained on demonstrations + corrected trajectories, no guidance;
5. **DAG**: the same success data on the success generator and the raw failure rollouts on
   the failure generator, one backbone; sampled with **Static-FIL** (λ = ``--static-scale``)
   and **Adaptive-FIL** (eq. 8); each row's λ is the best of its grid (``--static-scales``,
   ``--scales``) on validation scenes (seeds 50000..), as the paper tuned its static 0.05.

Every row is measured on the same ``--trials`` unseen scenes per task (seeds 100000..), three
short-horizon skills and two long-horizon tasks; out of domain (Table 4) on unseen sizes,
masses, frictions and clutter; λ ∈ {0.5, 1, 2, 5} with adaptive guidance (Table 2) on one
short and one long task. Latency: one chunk sampled on this CPU (10 Euler steps), per mode.

``python benchmarks/afil.py`` writes results/afil.{json,md,png}; ``--ship PATH`` also writes the
DAG model as a controller checkpoint (the shipped one: src/f2p_afil/models/).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = ("success_only", "failure_correction", "static_fil", "adaptive_fil")
ROW_NAMES = {"success_only": "Success-only", "failure_correction": "+ Failure Correction",
             "static_fil": "Static-FIL", "adaptive_fil": "Adaptive-FIL"}
SCALES = (0.5, 1.0, 2.0, 5.0)


def latency(policy, guidance_modes, calls: int) -> dict:
    import numpy as np
    import torch

    from f2p_afil.policy import Guidance, sample_chunks
    feats = torch.zeros((1, policy.config.feature_dim))
    out = {}
    for mode, scale in guidance_modes:
        g = Guidance(mode, scale)
        sample_chunks(policy, feats, g)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            sample_chunks(policy, feats, g)
            times.append(1000 * (time.perf_counter() - t0))
        out[mode] = {"mean_ms": round(float(np.mean(times)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(report["table1"][ROWS[0]])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1.2]})
    x = np.arange(len(tasks))
    for k, row in enumerate(ROWS):
        vals = [100 * report["table1"][row][t]["success"] for t in tasks]
        axes[0].bar(x + (k - 1.5) * 0.2, vals, 0.2, label=ROW_NAMES[row])
    axes[0].set_xticks(x, [t.replace("_", " ") for t in tasks])
    axes[0].set_ylabel("success (%)")
    axes[0].set_ylim(0, 100)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"AFIL on f2p's skills ({report['trials']} trials per cell)")
    for task, vals in report["lambda_ablation"].items():
        axes[1].plot(list(SCALES), [100 * vals[str(s)]["success"] for s in SCALES], marker="o", label=task)
    axes[1].set_xscale("log")
    axes[1].set_xticks(list(SCALES), [str(s) for s in SCALES])
    axes[1].minorticks_off()
    axes[1].set_xlabel("guidance scale λ (adaptive)")
    axes[1].set_ylabel("success (%)")
    axes[1].legend(fontsize=8)
    axes[1].set_title("Table 2: λ ablation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demos", type=int, default=200, help="training scenes per task for demonstrations")
    p.add_argument("--rollouts", type=int, default=200, help="training scenes per task for failure rollouts")
    p.add_argument("--trials", type=int, default=100, help="evaluation scenes per task and row")
    p.add_argument("--ood-trials", type=int, default=100, help="evaluation scenes per out-of-domain cell")
    p.add_argument("--lambda-trials", type=int, default=100, help="evaluation scenes per λ-ablation cell")
    p.add_argument("--steps", type=int, default=6000, help="training steps per model")
    p.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                   help="Adaptive-FIL's λ: the best of these on validation scenes (the paper's 1.0 is one)")
    p.add_argument("--static-scales", type=float, nargs="+", default=[0.05, 0.25, 1.0, 2.0],
                   help="Static-FIL's constant λ: the best of these on validation scenes (as the paper tuned its 0.05)")
    p.add_argument("--val-trials", type=int, default=40, help="validation scenes per task for choosing each λ")
    p.add_argument("--latency-calls", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ship", default="", help="also write the DAG model as a controller checkpoint here")
    p.add_argument("--results", default=str(RESULTS), help="folder for afil.{json,md,png}")
    a = p.parse_args(argv)

    import torch
    torch.set_num_threads(a.threads)
    from f2p_afil.checkpoint import save_controller
    from f2p_afil.controller import AfilController
    from f2p_afil.policy import Guidance
    from f2p_datasets.skill_tasks import DOMAINS, LONG_TASKS, OOD_TASKS, SHORT_TASKS, TASKS
    from f2p_datasets.afil_data import DataConfig, collect, evaluate
    from f2p_training.afil import TrainConfig, chunk_dataset, train_policy

    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[afil {time.monotonic() - t_start:6.0f} s] {msg}", flush=True)

    log(f"demonstrations: {a.demos} scenes x {len(TASKS)} tasks")
    demo_runs = collect(DataConfig(n=a.demos, seed_start=0), progress=log)
    demos = [t for r in demo_runs for t in r.trajectories if t.result.success]
    demo_rate = sum(r.success for r in demo_runs) / len(demo_runs)
    success_data = chunk_dataset(demos)
    train_cfg = TrainConfig(steps=a.steps)
    log(f"train success-only on {len(success_data[0])} samples")
    so = train_policy(success_data, None, train_cfg, progress=log)

    log(f"failure rollouts of the success-only policy: {a.rollouts} scenes x {len(TASKS)} tasks")
    rollouts = collect(DataConfig(n=a.rollouts, seed_start=1000, corrections=2),
                       act=AfilController(so.policy, Guidance("none")), progress=log)
    failures = [t for r in rollouts for t in r.trajectories if not t.result.success]
    corrections = [t for r in rollouts for t in r.corrections]
    failure_kinds: dict = {}
    for t in failures:
        failure_kinds[t.result.failure] = failure_kinds.get(t.result.failure, 0) + 1
    corrected_data = chunk_dataset(demos + corrections)
    failure_data = chunk_dataset(failures)
    log(f"{len(failures)} failed skills ({failure_kinds}), {len(corrections)} corrected trajectories")
    log("train + failure correction")
    fc = train_policy(corrected_data, None, train_cfg, progress=log)
    log("train DAG (success + corrections | raw failures)")
    dag = train_policy(corrected_data, failure_data, train_cfg, progress=log)

    val_seeds = range(50000, 50000 + a.val_trials)

    def validate(mode: str, scales) -> tuple[float, dict]:
        val = {str(s): round(sum(evaluate(dag.policy, Guidance(mode, s), task, val_seeds)["success"] for task in TASKS)
                             / len(TASKS), 4) for s in scales}
        best = max(scales, key=lambda s: val[str(s)])
        log(f"{mode} λ on validation scenes: {val} -> {best}")
        return best, val
    a.static_scale, static_val = validate("static", a.static_scales)
    a.scale, adaptive_val = validate("adaptive", a.scales)

    lat = latency(dag.policy, [("none", 0.0), ("static", a.static_scale), ("adaptive", a.scale)], a.latency_calls)
    log(f"latency per chunk: {lat}")

    rows = {"success_only": (so.policy, Guidance("none")), "failure_correction": (fc.policy, Guidance("none")),
            "static_fil": (dag.policy, Guidance("static", a.static_scale)),
            "adaptive_fil": (dag.policy, Guidance("adaptive", a.scale))}
    eval_seeds = range(100000, 100000 + a.trials)
    table1 = {row: {} for row in ROWS}
    for task in TASKS:
        for row, (policy, guidance) in rows.items():
            table1[row][task] = evaluate(policy, guidance, task, eval_seeds)
        log(f"{task}: " + ", ".join(f"{ROW_NAMES[r]} {table1[r][task]['success']:.2f}" for r in ROWS))

    lam = {}
    for task in ("push", "push_stack"):
        lam[task] = {str(s): evaluate(dag.policy, Guidance("adaptive", s), task, range(100000, 100000 + a.lambda_trials))
                     for s in SCALES}
        log(f"λ ablation {task}: " + ", ".join(f"{s}: {lam[task][str(s)]['success']:.2f}" for s in SCALES))

    ood = {}
    ood_seeds = range(200000, 200000 + a.ood_trials)
    for domain in DOMAINS[1:]:
        ood[domain] = {}
        for task in OOD_TASKS:
            ood[domain][task] = {row: evaluate(policy, guidance, task, ood_seeds, domain)
                                 for row, (policy, guidance) in rows.items()}
            log(f"OOD {domain} {task}: " + ", ".join(f"{ROW_NAMES[r]} {ood[domain][task][r]['success']:.2f}" for r in ROWS))

    report = {
        "benchmark": "afil", "trials": a.trials, "ood_trials": a.ood_trials, "lambda_trials": a.lambda_trials,
        "short_horizon": list(SHORT_TASKS), "long_horizon": list(LONG_TASKS),
        "data": {"demo_scenes": a.demos * len(TASKS), "demo_success_rate": round(demo_rate, 3),
                 "demonstrations": len(demos), "rollout_scenes": a.rollouts * len(TASKS),
                 "failed_skills": len(failures), "failure_kinds": failure_kinds, "corrections": len(corrections),
                 "success_samples": len(success_data[0]), "corrected_samples": len(corrected_data[0]),
                 "failure_samples": len(failure_data[0])},
        "training": {"steps": a.steps, "success_only": so.summary(), "failure_correction": fc.summary(), "dag": dag.summary()},
        "guidance": {"static_scale": a.static_scale, "static_validation": static_val, "adaptive_scale": a.scale,
                     "adaptive_validation": adaptive_val, "validation_trials": a.val_trials, "euler_steps": Guidance().steps},
        "table1": table1, "lambda_ablation": lam, "ood": ood, "latency_ms": lat,
        "machine": {"cpu_threads": a.threads, "python": platform.python_version(), "platform": platform.platform(),
                    "other_load": "nothing else running"},
        "seconds": round(time.monotonic() - t_start, 1),
    }
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "afil.json").write_text(json.dumps(report, indent=1) + "\n")
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = ["# AFIL (paper 003) on f2p's skills", "",
             f"{a.trials} unseen scenes per cell; demonstrations {len(demos)} ({demo_rate:.2f} of the demonstrator's runs "
             f"succeeded), failed skills {len(failures)}, corrected trajectories {len(corrections)}; "
             f"Static-FIL λ = {a.static_scale}, Adaptive-FIL λ = {a.scale}.", "",
             "| row | " + " | ".join(TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    for row in ROWS:
        lines.append(f"| {ROW_NAMES[row]} | " + " | ".join(pct(table1[row][t]["success"]) for t in TASKS) + " |")
    lines += ["", "Out of domain (success %, rows as above):", "",
              "| domain | task | " + " | ".join(ROW_NAMES[r] for r in ROWS) + " |", "|---|---|" + "---|" * len(ROWS)]
    for domain, by_task in ood.items():
        for task, cells in by_task.items():
            lines.append(f"| {domain} | {task} | " + " | ".join(pct(cells[r]["success"]) for r in ROWS) + " |")
    lines += ["", "Adaptive guidance scale λ (success %):", "", "| task | " + " | ".join(str(s) for s in SCALES) + " |",
              "|---|" + "---|" * len(SCALES)]
    for task, vals in lam.items():
        lines.append(f"| {task} | " + " | ".join(pct(vals[str(s)]["success"]) for s in SCALES) + " |")
    lines += ["", f"Latency per chunk ({a.threads} threads, 10 Euler steps): "
              + ", ".join(f"{m} {v['mean_ms']} ms mean / {v['p95_ms']} ms p95" for m, v in lat.items()),
              f"Training: {so.seconds:.0f} s / {fc.seconds:.0f} s / {dag.seconds:.0f} s ({a.steps} steps each); "
              f"whole benchmark {report['seconds']:.0f} s."]
    (results / "afil.md").write_text("\n".join(lines) + "\n")
    plot(report, results / "afil.png")
    if a.ship:
        from f2p_afil.observation import SKILL_NAMES
        trained = sorted({t.skill for t in demos})
        metrics = {"table1": {r: {t: table1[r][t]["success"] for t in TASKS} for r in ROWS}, "latency_ms": lat}
        training = {"recipe": "python benchmarks/afil.py --ship " + a.ship, "skills": [s for s in SKILL_NAMES if s in trained],
                    "data": report["data"], "train_steps": a.steps, "guidance": report["guidance"],
                    "tasks": list(TASKS), "demo_seeds": [0, a.demos], "rollout_seeds": [1000, 1000 + a.rollouts]}
        digest = save_controller(a.ship, dag.policy, version=f"afil-dag-{time.strftime('%Y%m%d')}", training=training,
                                 metrics=metrics)
        log(f"shipped the DAG controller to {a.ship} (sha256 {digest[:12]})")
    log(f"wrote {results}/afil.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
