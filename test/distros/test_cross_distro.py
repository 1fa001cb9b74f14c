"""The robot graph on one ROS 2 distro and the learner on the other (issue 47 part 3): ``make
test-distros`` runs this in the Jazzy workspace with the learner started in Kilted's
(``f2p_bringup.distro``: a clean environment, the other workspace's env.sh), over DDS on loopback.
One failure crosses: recorded by the Jazzy robot, shipped to and acknowledged by the Kilted
learner, learned from, signed, pushed back and swapped in by the Jazzy planner; the Jazzy recorder's
bag says jazzy. Tiny learning settings, as test_live_demo's (whether the child then succeeds is
make demo's point, not this test's)."""
from __future__ import annotations

import importlib.metadata

import pytest
import yaml

from f2p_bringup.distro import DISTROS, current_distro
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_demo.live_demo import LiveDemoConfig, run_live_demo

pytestmark = pytest.mark.other_workspace


def test_a_failure_on_one_distro_is_learned_on_the_other_and_swapped_back(tmp_path):
    here = current_distro()
    other = next(d for d in DISTROS if d != here)
    assert importlib.metadata.version(f"ros-{here}-rclpy")           # this process runs its distro's wheels
    data = {}
    for name, seed in (("replay", 1), ("regression", 2)):
        generate(DatagenConfig(tmp_path / name, DatagenParams(transitions=6, shard_size=6, seed=seed,
                                                               hold_out_failure_modes=True), workers=1, progress=False))
        data[name] = str(tmp_path / name)
    r = run_live_demo(LiveDemoConfig(tmp_path / "demo", eval_trials=0, epochs=2, particles=4, svgd_steps=3,
                                     regression_tolerance=1.0, worker_threads=1, stage_timeout_s=300, data=data,
                                     learner_distro=other))
    learner = "\n".join(r.learner_output)
    assert f"learner graph running (ROS 2 {other})" in learner, learner
    whats = [w for _t, w, _d in r.timeline]
    assert r.first == "failure" and r.event_id, (whats, learner)
    for stage in ("shipped to the learner, acknowledged (queued on its disk)", "fine-tuned", "signed and stored",
                  "swapped"):
        assert stage in whats, (stage, whats, learner)
    assert r.child_version and r.retry in ("success", "failure")
    live = tmp_path / "demo" / "live"
    assert (live / "learner_queue" / "learned" / f"{r.event_id}.f2pevent").is_file()
    assert (live / "models" / r.child_version / "model.pt.sig").is_file()
    metadata = yaml.safe_load((r.bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["ros_distro"] == here and r.bag_messages.get("/failure_events", 0) >= 1
