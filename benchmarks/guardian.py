"""Guardian's verifiers on our FailCoT test split (issue 32; paper 002 Tables II-IV, Fig. 5).

1. FailCoT from the simulator (``f2p_datasets.failcot``; resumed if already there): the test split
   holds task variants and a camera no training example has.
2. symbolic verifier: on the test split's boxes as the simulator gives them, and with every box
   corner moved by Gaussian noise (``--box-noise`` m; what perception's boxes are off by).
3. the cheap baseline (image CNN + hashed words, the paper's CLIP+MLP role) trained on train.
4. the vision-language verifier (our small InternVL) trained with each CoT strategy: vanilla,
   thinking, dropout (§IV-C); thinking answers after generating its reasoning, so its test
   evaluation is limited to ``--thinking-test`` examples (counts are reported).
5. the data scaling curve (Fig. 5): the vanilla strategy on 1/4, 1/2 and all training examples.
Accuracy is the verdict's (success / failure), per mode and per category with counts; latency
per call on this CPU. The best small model by validation accuracy is copied to ``--ship`` if
given (the package's ``models/guardian_vlm``).

``python benchmarks/guardian.py`` writes results/guardian.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
#: Paper 002 Table II: Guardian-8B accuracy (execution / planning) on the real-robot benchmarks.
PAPER = {"RoboFail": {"execution": 0.86, "plan": 0.70}, "UR5-Fail": {"execution": 0.77, "plan": 0.89},
         "RoboVQA": {"execution": 0.85}}


def noisy_boxes(examples: list[dict], std: float, seed: int) -> list[dict]:
    """Copies of ``examples`` whose box corners are moved by N(0, std) per coordinate."""
    rng = np.random.default_rng(seed)
    out = []
    for ex in examples:
        ex = json.loads(json.dumps(ex))
        for key in ("scene", "scene_after"):
            if key in ex:
                lo = np.asarray(ex[key]["lower"]) + rng.normal(0, std, np.shape(ex[key]["lower"]))
                hi = np.asarray(ex[key]["upper"]) + rng.normal(0, std, np.shape(ex[key]["upper"]))
                ex[key]["lower"], ex[key]["upper"] = np.minimum(lo, hi).tolist(), np.maximum(lo, hi).tolist()
        out.append(ex)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="out/guardian", help="data and checkpoints (resumed)")
    p.add_argument("--scenes-per-variant", type=int, default=50)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--baseline-epochs", type=int, default=30)
    p.add_argument("--thinking-test", type=int, default=120, help="test examples the thinking strategy answers")
    p.add_argument("--thinking-val", type=int, default=24, help="validation examples the thinking strategy answers")
    p.add_argument("--box-noise", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ship", default=None, help="copy the best small model here (e.g. src/f2p_guardian/models/guardian_vlm)")
    p.add_argument("--quick", action="store_true", help="a few scenes and one epoch (a smoke run, not results)")
    p.add_argument("--results", default=str(RESULTS), help="folder for guardian.{json,md,png}")
    p.add_argument("--symbolic-only", action="store_true",
                   help="re-measure the symbolic verifier on the same data and update its rows of an existing report")
    a = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from f2p_guardian.baseline import BaselineVerifier
    from f2p_guardian.examples import load_examples
    from f2p_guardian.symbolic import SymbolicVerifier
    from f2p_guardian.vlm import GuardianVLM, STRATEGIES
    from f2p_datasets.failcot import FailCoTConfig, generate
    from f2p_training.guardian import BaselineTrainConfig, VLMTrainConfig, evaluate, train_baseline, train_vlm

    torch.set_num_threads(a.threads)
    if a.quick:
        a.scenes_per_variant, a.epochs, a.baseline_epochs, a.thinking_test, a.thinking_val = 2, 1, 2, 10, 4
    work = Path(a.work)
    say = lambda msg: print(f"[bench-guardian] {msg}", flush=True)   # noqa: E731
    t0 = time.perf_counter()
    data = generate(FailCoTConfig(str(work / "failcot"), scenes_per_variant=a.scenes_per_variant),
                    lambda done, total, shard: say(f"FailCoT scene {done}/{total}") if done % 20 == 0 else None)
    datagen_s = time.perf_counter() - t0
    root = str(data.root)
    train, test = load_examples(root, "train"), load_examples(root, "test")
    say(f"FailCoT: {len(train)} train, {len(load_examples(root, 'val'))} val, {len(test)} test examples "
        f"({datagen_s:.0f} s)")
    report = {"benchmark": "guardian", "command": "python " + " ".join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
              f"{a.threads} torch threads, nothing else running", "paper_guardian_8b": PAPER,
              "data": {"examples": data.examples, "skipped_scenes": len(data.skipped), "seconds": round(datagen_s, 1),
                       "scenes_per_variant": a.scenes_per_variant},
              "verifiers": {}, "scaling": []}
    symbolic = SymbolicVerifier()
    report["verifiers"]["symbolic"] = evaluate(symbolic, test, None)
    report["verifiers"][f"symbolic, boxes +-{a.box_noise * 100:.0f} cm"] = evaluate(
        symbolic, noisy_boxes(test, a.box_noise, 0), None)
    say(f"symbolic: {report['verifiers']['symbolic']['accuracy']:.3f}")
    if a.symbolic_only:
        return _write(_merge_symbolic(Path(a.results) / "guardian.json", report), Path(a.results))
    base = train_baseline(BaselineTrainConfig(root, str(work / "baseline"), epochs=a.baseline_epochs,
                                              threads=a.threads))
    report["verifiers"]["baseline"] = {**evaluate(BaselineVerifier.load(base.path), test, root),
                                       "train_seconds": round(base.seconds, 1), "parameters": base.parameters}
    say(f"baseline: {report['verifiers']['baseline']['accuracy']:.3f}")
    best = (-1.0, None)
    for strategy in ("vanilla", "dropout", "thinking"):
        assert strategy in STRATEGIES
        # Thinking is validated on fewer examples: each one generates its reasoning first.
        r = train_vlm(VLMTrainConfig(root, str(work / f"vlm_{strategy}"), strategy, epochs=a.epochs,
                                     val_limit=a.thinking_val if strategy == "thinking" else 80, threads=a.threads),
                      lambda msg, s=strategy: say(f"vlm {s}: {msg}"))
        vlm = GuardianVLM.from_pretrained(r.path)
        cases = test if strategy != "thinking" else test[::max(1, len(test) // a.thinking_test)][:a.thinking_test]
        report["verifiers"][f"vlm {strategy}"] = {
            **evaluate(vlm, cases, root), "train_seconds": round(r.seconds, 1), "parameters": r.parameters,
            "best_validation_accuracy": max(r.val_accuracy), "size_mb": round(r.size_bytes / 1e6, 2)}
        say(f"vlm {strategy}: {report['verifiers'][f'vlm {strategy}']['accuracy']:.3f}")
        if max(r.val_accuracy) > best[0]:
            best = (max(r.val_accuracy), r.path)
        if strategy == "vanilla":
            report["scaling"].append({"train_examples": r.train_examples,
                                      "accuracy": report["verifiers"]["vlm vanilla"]["accuracy"]})
    for fraction in (4, 2):
        n = len(train) // fraction
        r = train_vlm(VLMTrainConfig(root, str(work / f"vlm_vanilla_{n}"), "vanilla", epochs=a.epochs, max_train=n,
                                     threads=a.threads), lambda msg, n=n: say(f"vlm vanilla on {n}: {msg}"))
        report["scaling"].append({"train_examples": r.train_examples,
                                  "accuracy": evaluate(GuardianVLM.from_pretrained(r.path), test, root)["accuracy"]})
    report["scaling"].sort(key=lambda s: s["train_examples"])
    report["best_vlm"] = str(best[1])
    if a.ship and best[1] is not None and not a.quick:
        shutil.rmtree(a.ship, ignore_errors=True)
        shutil.copytree(best[1], a.ship)
        report["shipped"] = a.ship
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return _write(report, Path(a.results))


def _merge_symbolic(path: Path, report: dict) -> dict:
    """The report at ``path`` with its symbolic rows replaced by ``report``'s (same data)."""
    if not path.exists():
        raise SystemExit(f"--symbolic-only updates an existing report; {path} does not exist")
    old = json.loads(path.read_text())
    if old["data"]["examples"] != report["data"]["examples"]:
        raise SystemExit("--symbolic-only: the FailCoT data differs from the report's")
    rows = {k: v for k, v in report["verifiers"].items() if k.startswith("symbolic")}
    old["verifiers"] = {**rows, **{k: v for k, v in old["verifiers"].items() if not k.startswith("symbolic")}}
    old["symbolic_command"] = report["command"]
    return old


def _write(report: dict, results: Path) -> int:
    results.mkdir(parents=True, exist_ok=True)
    (results / "guardian.json").write_text(json.dumps(report, indent=1) + "\n")
    (results / "guardian.md").write_text(summary(report) + "\n")
    draw(report, results / "guardian.png")
    print(summary(report))
    return 0


def summary(r: dict) -> str:
    lines = ["# Guardian verifiers on FailCoT's test split (unseen task variants and camera)", "",
             f"{r['machine']}; data: {json.dumps(r['data']['examples'].get('test', {}))}", "",
             "| verifier | accuracy | plan | execution | category acc. | latency mean / p95 |",
             "|---|---|---|---|---|---|"]
    for name, v in r["verifiers"].items():
        m = v["modes"]
        cell = lambda k: f"{m[k]['accuracy']:.3f} ({m[k]['right']}/{m[k]['count']})" if k in m else "-"   # noqa: E731
        lines.append(f"| {name} | {v['accuracy']:.3f} ({v['count']}) | {cell('plan')} | {cell('execution')} | "
                     f"{v['category_accuracy']:.3f} | {1e3 * v['latency_s']['mean']:.1f} / "
                     f"{1e3 * v['latency_s']['p95']:.1f} ms |")
    lines += ["", "Per category (verdict accuracy, right/count):", ""]
    for name, v in r["verifiers"].items():
        for mode, m in v["modes"].items():
            cats = ", ".join(f"{c} {d['right']}/{d['count']}" for c, d in sorted(m["categories"].items()))
            lines.append(f"- {name}, {mode}: {cats}")
    lines += ["", "Data scaling (vlm vanilla): " + ", ".join(f"{s['train_examples']} -> {s['accuracy']:.3f}"
                                                           for s in r["scaling"]),
              "", "Paper 002 Guardian-8B (Table II, real-robot benchmarks): " + json.dumps(r["paper_guardian_8b"])]
    return "\n".join(lines)


def draw(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(r["verifiers"])
    x = np.arange(len(names))
    for k, mode in enumerate(("plan", "execution")):
        vals = [r["verifiers"][n]["modes"].get(mode, {}).get("accuracy", 0) for n in names]
        ax1.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=mode)
    ax1.axhline(0.9, color="k", ls="--", lw=0.8)
    ax1.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("verdict accuracy (test)")
    ax1.legend()
    s = r["scaling"]
    ax2.plot([p["train_examples"] for p in s], [p["accuracy"] for p in s], "o-")
    ax2.set_xscale("log")
    ax2.set_xlabel("training examples")
    ax2.set_ylabel("accuracy (vlm vanilla, test)")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
