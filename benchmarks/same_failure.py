"""How often "the same failure" merges wrongly (issue 46 part 2): the learner learns a failure once
when several robots report it (``merge_same_failures``, by ``f2p_failure.events.failure_signature``).

Generated cases: the shipped pre-trained model runs fresh simulated tasks (transport and
organize, 3 and 5 objects, task seeds off every reported range); each failure event stands for
one robot's report. Events with one signature are merged into the first of them, as the learner
does. The ground truth for "the same failure" is what learning from it does: the shipped child
``skill_effect_transport3_learned.pt`` (learned from a single transport-3 failure) runs each
failed task again, and a merged event is **wrongly merged** when the child fixes its task but
not its group's first event's task, or the other way round (learning once would leave one of the
robots failing, or would have fixed it had it been learned on its own). Also reported: the
events, the groups, how many were merged, and groups the signature split although the child
fixes both (over-splitting: learned twice, harmless but not "once").

Writes ``benchmarks/results/same_failure.{json,md}``; about 5 minutes on 2 cores:

    . ./env.sh && OMP_NUM_THREADS=1 python benchmarks/same_failure.py
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: Task seeds of this study: off fail2progress' failure search (1000..1019) and evaluation ranges.
SEED_BASE = 70_000


@dataclass
class SameFailureConfig:
    """tasks: (kind, objects) cells; trials: task seeds per cell; write: the results files."""

    tasks: tuple[tuple[str, int], ...] = (("transport", 3), ("transport", 5), ("organize", 3), ("organize", 5))
    trials: int = 40
    write: bool = True


def run(cfg: SameFailureConfig) -> dict:
    import torch
    from f2p_failure.events import failure_signature
    from f2p_sim.config import load_world_config
    from f2p_sim.episode import TrialConfig, run_trial
    from f2p_sim.mujoco_backend import MujocoBackend
    from f2p_sim.tasks import make_task
    from f2p_skill_effect.checkpoint import load_checkpoint, model_from_checkpoint, shipped_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    world = load_world_config()
    backend = MujocoBackend(world)
    models = {}
    for name in ("skill_effect_pretrained.pt", "skill_effect_transport3_learned.pt"):
        ckpt = load_checkpoint(shipped_model(name))
        models[name] = (model_from_checkpoint(ckpt).eval(), ckpt.version)
    parent, child = models["skill_effect_pretrained.pt"], models["skill_effect_transport3_learned.pt"]
    tcfg = TrialConfig()
    events = []
    for kind, n in cfg.tasks:
        for i in range(cfg.trials):
            seed = SEED_BASE + 1000 * n + i
            task = make_task(kind, n, seed, world)
            first = run_trial(*parent, task, backend, tcfg, seed=0)
            if first.failure is None:
                continue
            again = run_trial(*child, make_task(kind, n, seed, world), backend, tcfg, seed=0)
            events.append({"cell": f"{kind}-{n}", "seed": seed, "signature": failure_signature(first.failure),
                           "child_fixes": again.success, "skill": first.failure.skill,
                           "mismatches": sorted({m["predicate"] for m in first.failure.mismatches})})
        print(f"[same_failure] {kind}-{n}: {sum(e['cell'] == f'{kind}-{n}' for e in events)} failures of "
              f"{cfg.trials}", flush=True)
    groups = defaultdict(list)
    for e in events:
        groups[e["signature"]].append(e)
    merged = [(g[0], e) for g in groups.values() for e in g[1:]]
    wrong = [(p, e) for p, e in merged if p["child_fixes"] != e["child_fixes"]]
    fixed_groups = [g for g in groups.values() if all(e["child_fixes"] for e in g)]
    result = {
        "tasks": [f"{k}-{n}" for k, n in cfg.tasks], "trials_per_cell": cfg.trials, "events": len(events),
        "groups": len(groups), "merged": len(merged), "wrongly_merged": len(wrong),
        "wrong_merge_rate": round(len(wrong) / len(merged), 3) if merged else None,
        "groups_fixed_by_the_child": len(fixed_groups),
        "child_fixes_events": sum(e["child_fixes"] for e in events),
        "cross_cell_groups": sum(len({e["cell"] for e in g}) > 1 for g in groups.values()),
        "events_list": [{k: e[k] for k in ("cell", "seed", "signature", "child_fixes")} for e in events],
        "wrong_examples": [{"first": p["cell"] + f"/{p['seed']}", "merged": e["cell"] + f"/{e['seed']}",
                            "child_fixes": [p["child_fixes"], e["child_fixes"]], "mismatches": e["mismatches"]}
                           for p, e in wrong[:10]],
        "machine": f"{os.cpu_count()} cores, no GPU; nothing else running",
    }
    print(f"[same_failure] {len(events)} events, {len(groups)} groups, {len(merged)} merged, {len(wrong)} wrongly",
          flush=True)
    if cfg.write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "same_failure.json").write_text(json.dumps(result, indent=1) + "\n")
        rate = "n/a" if result["wrong_merge_rate"] is None else f"{100 * result['wrong_merge_rate']:.1f} %"
        (RESULTS / "same_failure.md").write_text(
            "# The same failure from several robots, learned once: how often it merges wrongly\n\n"
            f"`python benchmarks/same_failure.py`; {result['machine']}. The shipped pre-trained model on "
            f"{cfg.trials} fresh tasks per cell ({', '.join(result['tasks'])}); each failure event one robot's "
            "report, merged by `failure_signature` as the learner does. Ground truth: whether the shipped child "
            "(learned from one transport-3 failure) fixes each failed task; a merged event is wrong when the "
            "child fixes it but not its group's first event, or the reverse.\n\n"
            "| events | groups | merged | wrongly merged | rate | groups the child fixes whole | groups across cells |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {result['events']} | {result['groups']} | {result['merged']} | {result['wrongly_merged']} | {rate} | "
            f"{result['groups_fixed_by_the_child']} | {result['cross_cell_groups']} |\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=SameFailureConfig.trials)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    run(SameFailureConfig(trials=a.trials, write=not a.no_write))
    return 0


if __name__ == "__main__":
    sys.exit(main())
