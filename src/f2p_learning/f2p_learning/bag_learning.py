"""``f2p-learn-bag``: learn offline from the failures recorded in a rosbag2 bag, with the learner's own code.

Every ``f2p_interfaces/msg/FailureEvent`` in the bag (whatever its topic) is decoded with the
same generated class and conversion the learner node's ``submit_failure`` uses, queued in an
:class:`~f2p_learning.jobs.Learner` built from the learner's parameters (the same params file the
``learner`` node reads: ``share/f2p_bringup/config/learner.yaml`` or yours), and learned from
one job at a time: classify, SVGD, D+, fine-tuning, the gate, signed and stored children. So from
the same event and parameters the online and offline paths give bit-identical children. An event
recorded twice is learned once; a malformed one is listed with why; a bag damaged part-way (a
recorder killed, a disk error) gives the events before the damage, and the report says where
it stopped.

Output (``out``): ``queue/`` (the events, moved by outcome as in the learner), ``models/`` (the
store, one folder per version with its lineage) and ``bag_learning.json``. Exit codes: 0 every
event learned (or none in the bag), 1 some event was refused (malformed) or did not give a
deployable child, 2 bad input (no bag, unreadable parameters), 3 the bag is damaged (what was before the damage was learned).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from f2p_failure.events import FailureEventError
from f2p_common.parameters import validate
from f2p_common.resources import share_path
from f2p_learning.jobs import PARAMS, JobResult, Learner, learner_config
from f2p_ros.bag import BagError, BagReader
from f2p_ros.conversions import ConversionError, failure_event_from_msg

FAILURE_EVENT = "f2p_interfaces/msg/FailureEvent"


@dataclass
class BagLearningConfig:
    """bag: a bag folder or .mcap file; out: where queue/, models/ and the report go; params_file:
    the learner's parameters (None: the installed config/learner.yaml); overrides: parameter
    values over the file's (queue_dir and store_dir are always under ``out``)."""

    bag: str | Path
    out: str | Path
    params_file: str | Path | None = None
    overrides: dict = field(default_factory=dict)


@dataclass
class BagLearningResult:
    events: list[str] = field(default_factory=list)           # event ids found, in bag order
    refused: dict[str, str] = field(default_factory=dict)     # event id (or #n) -> why it was not queued
    damage: str | None = None
    jobs: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.damage:
            return 3
        return 0 if all(j.deployable for j in self.jobs) and not self.refused else 1


def learner_parameters(params_file: str | Path | None, overrides: dict) -> dict:
    """The learner node's validated parameters from a params file (``learner: ros__parameters``)."""
    if params_file is None:                # the learner graph's params file (f2p_bringup's package data)
        params_file = share_path("f2p_bringup", "config", "learner.yaml")
    try:
        doc = yaml.safe_load(Path(params_file).read_text()) or {}
        values = dict(doc.get("learner", {}).get("ros__parameters", {}))
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"cannot read the learner's parameters from {params_file}: {exc}") from None
    values.update(overrides)
    return validate(PARAMS, values, "learner")


def learn_from_bag(cfg: BagLearningConfig, say=print) -> BagLearningResult:
    """Module docstring. ValueError / BagError for bad input."""
    t0 = time.monotonic()
    out = Path(cfg.out)
    # a bag is the operator's own record, read offline: its events carry no producer signature
    values = learner_parameters(cfg.params_file, {**cfg.overrides, "queue_dir": str(out / "queue"),
                                                  "store_dir": str(out / "models"), "enrolled_robots": ""})
    reader = BagReader(cfg.bag)
    learner = Learner(learner_config(values))
    result = BagLearningResult()
    for n, m in enumerate(reader.messages(msgtypes=[FAILURE_EVENT])):
        try:
            msg = m.decode()
        except Exception as exc:                     # noqa: BLE001  rclpy raises plain errors on bad CDR
            result.refused[f"#{n}"] = f"message {n} on {m.topic} does not deserialize: {exc}"
            continue
        try:
            event = failure_event_from_msg(msg)
            _path, state = learner.submit(event)
        except (ConversionError, FailureEventError, ValueError) as exc:
            result.refused[msg.event_id or f"#{n}"] = f"malformed failure event: {exc}"
            continue
        if event.event_id not in result.events:
            result.events.append(event.event_id)
        say(f"[f2p-learn-bag] event {event.event_id} ({event.skill} on segment {event.target}, {m.topic}): {state}")
    result.damage = reader.damage
    if result.damage:
        say(f"[f2p-learn-bag] the bag is damaged: {result.damage}; learning from the "
            f"{len(result.events)} events before it")
    while True:
        job = learner.run_next(lambda eid, stage, frac, status: say(f"[f2p-learn-bag] {eid[:8]} {stage} "
                                                                    f"{100 * frac:.0f}%: {status}"))
        if job is None:
            break
        result.jobs.append(job)
    result.seconds = round(time.monotonic() - t0, 1)
    report = {"bag": str(cfg.bag), "events": result.events, "refused": result.refused, "damage": result.damage,
              "seconds": result.seconds, "parameters": values,
              "jobs": [{"event_id": j.event_id, "outcome": j.outcome, "state": j.state, "deployable": j.deployable,
                        "reason": j.reason, "model": j.model.version if j.model else None,
                        "model_path": str(j.model.path) if j.model else None} for j in result.jobs]}
    (out / "bag_learning.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="f2p-learn-bag", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bag", help="a rosbag2 bag folder (MCAP) or .mcap file")
    p.add_argument("--out", required=True, help="folder for queue/, models/ and bag_learning.json")
    p.add_argument("--params-file", default=None, help="the learner's parameters (default: f2p_bringup's learner.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="override the params file's epochs")
    a = p.parse_args(argv)
    overrides = {} if a.epochs is None else {"epochs": a.epochs}
    try:
        result = learn_from_bag(BagLearningConfig(a.bag, a.out, a.params_file, overrides))
    except (ValueError, BagError, OSError) as exc:
        print(f"f2p-learn-bag: {exc}", file=sys.stderr)
        return 2
    print(f"[f2p-learn-bag] {len(result.events)} events, {len(result.refused)} refused, "
          f"{sum(j.deployable for j in result.jobs)} deployable children in {result.seconds:.0f} s; "
          f"report {Path(a.out) / 'bag_learning.json'}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
