"""``make demo``'s live loop, end to end with tiny learning settings: the sim graph and the learner
as processes over DDS; the pre-trained model fails, the event is persisted, shipped,
acknowledged, learned from in the learner's worker, signed, pushed and swapped in by a planner
that requires signatures, and the task is run again; the timeline and the report are written.
The run's bag holds the failure event, and learning from it offline (``f2p-learn-bag``, the same
learner parameters) gives the very child the live loop gave: the same weights bit for bit, version, metrics and
lineage (only the D+ folder's path differs). (Whether the tiny
child then succeeds is not the point here: ``make demo`` shows that.)"""
from __future__ import annotations

import torch

from f2p_failure.queue import EventQueue
from f2p_ros.bag import read_messages
from f2p_ros.conversions import stamp_to_ns
from f2p_learning.bag_learning import BagLearningConfig, learn_from_bag
from f2p_demo.live_demo import LiveDemoConfig, run_live_demo
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_skill_effect.checkpoint import load_checkpoint

STAGES = ["graph running", "failure detected", "persisted", "shipped to the learner, acknowledged (queued on its disk)",
          "SVGD over states and actions", "D+ simulated", "fine-tuned", "regression gate", "signed and stored",
          "swapped"]


def test_the_live_loop_fails_learns_swaps_and_retries(tmp_path):
    data = {}
    for name, seed in (("replay", 1), ("regression", 2)):
        generate(DatagenConfig(tmp_path / name, DatagenParams(transitions=6, shard_size=6, seed=seed,
                                                               hold_out_failure_modes=True), workers=1, progress=False))
        data[name] = str(tmp_path / name)
    out = tmp_path / "demo"
    r = run_live_demo(LiveDemoConfig(out, eval_trials=0, epochs=2, particles=4, svgd_steps=3, regression_tolerance=1.0,
                                     worker_threads=1, stage_timeout_s=300, data=data))
    whats = [w for _t, w, _d in r.timeline]
    assert r.first == "failure" and r.event_id and r.retry in ("success", "failure"), whats
    assert [w for w in dict.fromkeys(whats) if w in STAGES] == STAGES            # every stage, in order
    assert r.timeline[-1][1] in ("retry succeeded", "retry failed")
    times = [t for t, _w, _d in r.timeline]
    assert times == sorted(times)
    assert r.child_version and r.child_version != "ae063623659bb4aa"
    live = out / "live"
    assert EventQueue(live / "robot_spool", ("shipped",)).where(r.event_id) == "shipped"
    assert (live / "learner_queue" / "learned" / f"{r.event_id}.f2pevent").is_file()
    assert (live / "models" / r.child_version / "model.pt.sig").is_file()
    report = (out / "report.md").read_text()
    assert "## Timeline" in report and "failure detected" in report and r.child_version in report

    failures = 1 if r.retry == "success" else 2                       # the tiny child may fail the retry too
    assert r.bag_messages.get("/failure_events") == failures and r.bag_messages.get("/segmented_scene", 0) > 0
    assert r.bag_messages.get("/model_info", 0) >= 2                  # the pre-trained, then the child
    # one time base (f2p_ros.bag): every header stamp within a minute of when it was recorded
    messages, damage = read_messages(r.bag)
    stamped = [(m.topic, stamp_to_ns(d.header.stamp), m.stamp_ns) for m in messages for d in [m.decode()]
               if hasattr(d, "header")]
    assert damage is None and {"/segmented_scene", "/camera/points", "/gripper/pose"} <= {t for t, _h, _l in stamped}
    assert [(t, h, log) for t, h, log in stamped if abs(h - log) > 60e9] == []
    offline = learn_from_bag(BagLearningConfig(r.bag, tmp_path / "offline", live / "learner.yaml"))
    assert offline.damage is None and offline.events[0] == r.event_id and not offline.refused
    assert len(offline.jobs) == failures
    job = offline.jobs[0]
    assert job.model.version == r.child_version
    online, offline_ck = (load_checkpoint(p) for p in (live / "models" / r.child_version / "model.pt", job.model.path))
    assert online.state_dict.keys() == offline_ck.state_dict.keys()
    assert all(torch.equal(online.state_dict[k], offline_ck.state_dict[k]) for k in online.state_dict)   # bit for bit
    assert (online.metrics, online.parent_version, online.config) == (offline_ck.metrics, offline_ck.parent_version,
                                                                      offline_ck.config)
    # what differs is only where each D+ lies on disk (the job folders), recorded as provenance
    assert online.training_data["lineage"]["d_plus"] != offline_ck.training_data["lineage"]["d_plus"]
