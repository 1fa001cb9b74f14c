"""``make demo`` across ROS 2 distros (issue 47 part 3): the robot graph on one distro's wheels,
the learner in the other distro's f2p workspace, over DDS on loopback.

Runs :func:`f2p_demo.live_demo.run_live_demo` with ``learner_distro`` (the learner's
``f2p-bringup learner`` started from a clean environment in the other workspace,
``f2p_bringup.distro``) at the demo's own settings: the shipped model fails transport-3, the event
crosses to the learner, the child comes back signed and is swapped in, the task is run again, and
both models run fresh instances in process. Writes ``benchmarks/results/distros.{json,md}``: each
side's distro and rclpy, failure -> acknowledged, failure -> the child serving, the retry, the
fresh instances. Needs both workspaces (``make setup`` and ``F2P_ROS_DISTRO=jazzy make setup``);
run it from either, ~4 minutes:

    F2P_ROS_DISTRO=jazzy . ./env.sh && python benchmarks/distros.py
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class DistrosConfig:
    """out: the demo's folder (data and keys cached there); eval_trials: fresh instances per model;
    write: the results files."""

    out: Path = Path("out/bench_distros")
    eval_trials: int = 10
    write: bool = True


def _at(timeline, what: str) -> float | None:
    return next((t for t, w, _d in timeline if w == what), None)


def run(cfg: DistrosConfig) -> dict:
    from f2p_bringup.distro import DISTROS, current_distro
    from f2p_demo.live_demo import LiveDemoConfig, run_live_demo

    here = current_distro()
    other = next(d for d in DISTROS if d != here)
    r = run_live_demo(LiveDemoConfig(cfg.out, eval_trials=cfg.eval_trials, learner_distro=other,
                                     worker_threads=int(os.environ.get("OMP_NUM_THREADS", "2"))))
    failed = _at(r.timeline, "failure detected")
    learner_line = next((line for line in r.learner_output if "graph running" in line), "")
    result = {
        "robot_graph": {"distro": here, "rclpy": importlib.metadata.version(f"ros-{here}-rclpy")},
        "learner": {"distro": other, "runner_said": learner_line,
                    "distro_seen": (re.search(r"\(ROS 2 (\w+)\)", learner_line) or [None, None])[1]},
        "first": r.first, "retry": r.retry, "child_version": r.child_version,
        "failure_to_acknowledged_s": _delta(failed, _at(r.timeline, "shipped to the learner, acknowledged "
                                                                  "(queued on its disk)")),
        "failure_to_swapped_s": _delta(failed, _at(r.timeline, "swapped")),
        "fresh_instances": {"trials": r.trials, "pretrained": r.pretrained_successes, "learned": r.learned_successes},
        "timeline": r.timeline,
        "machine": "2 cores, no GPU; nothing else ran beside it",
        "command": "make bench-distros (F2P_ROS_DISTRO=jazzy . ./env.sh && python benchmarks/distros.py)",
    }
    if cfg.write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "distros.json").write_text(json.dumps(result, indent=1))
        (RESULTS / "distros.md").write_text(_summary(result))
    return result


def _delta(a, b):
    return None if a is None or b is None else round(b - a, 1)


def _summary(r: dict) -> str:
    f = r["fresh_instances"]
    return "\n".join([
        "# make demo across distros",
        "",
        f"The robot graph on ROS 2 {r['robot_graph']['distro']} (rclpy {r['robot_graph']['rclpy']}), the learner on "
        f"{r['learner']['distro']} (its runner: \"{r['learner']['runner_said']}\"), over DDS on loopback; "
        f"{r['machine']}. `{r['command']}`.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| first run; retry with the child | {r['first']}; {r['retry']} |",
        f"| failure -> acknowledged by the learner | {r['failure_to_acknowledged_s']} s |",
        f"| failure -> the child serving on the robot | {r['failure_to_swapped_s']} s |",
        f"| fresh transport-3 instances, pre-trained -> learned | {f['pretrained']}/{f['trials']} -> "
        f"{f['learned']}/{f['trials']} |",
        "",
    ])


def main(argv=None) -> int:
    d = DistrosConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--eval-trials", type=int, default=d.eval_trials)
    a = p.parse_args(argv)
    r = run(DistrosConfig(a.out, a.eval_trials))
    print(_summary(r))
    return 0 if r["retry"] == "success" and r["learner"]["distro_seen"] == r["learner"]["distro"] else 1


if __name__ == "__main__":
    sys.exit(main())
