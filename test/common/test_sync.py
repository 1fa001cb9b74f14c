"""The approximate-time synchroniser of camera streams (f2p_ros.sync), without ROS."""
import pytest

from f2p_ros.sync import ApproximateTimeSync

MS = 1_000_000


def make(slop_s=0.01, queue=5):
    frames = []
    return ApproximateTimeSync(["rgb", "depth", "info"], slop_s, queue, frames.append), frames


def test_equal_stamps_deliver_each_frame_once_in_order():
    sync, frames = make()
    for k in range(4):
        for s in ("rgb", "depth", "info"):
            sync.add(s, k * 33 * MS, (s, k))
    assert [{s: m[1] for s, m in f.items()} for f in frames] == [{"rgb": k, "depth": k, "info": k} for k in range(4)]
    assert sync.delivered == 4 and sync.dropped == 0


def test_jitter_within_slop_pairs_nearest_and_beyond_slop_does_not():
    sync, frames = make(slop_s=0.005)
    sync.add("rgb", 100 * MS, "rgb100")
    sync.add("depth", 97 * MS, "depth97")
    assert not sync.add("info", 92 * MS, "info92")             # 8 ms from the rgb: beyond the slop
    assert not frames
    assert sync.add("info", 101 * MS, "info101")
    assert frames == [{"info": "info101", "rgb": "rgb100", "depth": "depth97"}]


def test_late_message_never_delivers_an_older_frame_after_a_newer_one():
    sync, frames = make()
    sync.add("rgb", 0, "rgb0")
    for s in ("rgb", "depth", "info"):
        sync.add(s, 33 * MS, f"{s}33")
    assert frames == [{"rgb": "rgb33", "depth": "depth33", "info": "info33"}]
    # frame 0's depth and info come late: frame 0 is older than what was delivered, its rgb is gone
    assert not sync.add("depth", 0, "depth0")
    assert not sync.add("info", 0, "info0")
    assert len(frames) == 1


def test_a_silent_stream_delivers_nothing_and_is_named():
    sync, frames = make(queue=3)
    for k in range(5):
        sync.add("rgb", k * MS, k)
        sync.add("depth", k * MS, k)
    assert not frames
    assert sync.dropped == 4                                    # queues of 3, 5 each: 2 + 2 fell out
    assert sync.silent(max_age_s=60.0) == ["info"]
    assert sync.received == {"rgb": 5, "depth": 5, "info": 0}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        ApproximateTimeSync(["rgb"], 0.01, 5, print)
    with pytest.raises(ValueError):
        ApproximateTimeSync(["rgb", "rgb"], 0.01, 5, print)
    with pytest.raises(ValueError):
        ApproximateTimeSync(["rgb", "depth"], -1.0, 5, print)
    sync, _ = make()
    with pytest.raises(KeyError):
        sync.add("cloud", 0, None)
