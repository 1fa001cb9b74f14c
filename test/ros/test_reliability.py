"""The failure -> learner path under kills, small (benchmarks/reliability.py runs it at size):
the learner process SIGKILLed at random moments while the robot's recorder keeps recording real
failure events, then the recorder process killed while events are recorded — every
acknowledged event ends learned or queued on the learner exactly once, none lost."""
from __future__ import annotations

import pytest

from support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    bench = load_benchmark("reliability.py")
    return bench, bench.make_rig(tmp_path_factory.mktemp("reliability"), say=lambda _m: None)


def test_learner_killed_at_random_loses_and_duplicates_nothing(rig):
    bench, r = rig
    out = bench.learner_kills(r, kills=3, n_events=2, window_s=10.0, seed=3, say=print)
    assert out["acknowledged"] == 2 and out["drained"], out
    assert (out["lost"], out["duplicated"]) == (0, 0), out
    assert out["learner_states"]["learned"] == 2 and out["robot_spool"]["shipped"] == 2, out


def test_recorder_killed_at_random_loses_nothing(rig):
    bench, r = rig
    out = bench.recorder_kills(r, kills=2, n_events=4, seed=3, say=print)
    assert out["acknowledged"] == 4 and out["arrived"], out
    assert (out["lost"], out["duplicated"]) == (0, 0), out
