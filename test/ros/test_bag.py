"""rosbag2 bags (MCAP): f2p's types registered from the .msg files with the hashes rosidl gives
them, messages round-tripping through a bag an indexed reader (as ``ros2 bag``) accepts, a bag
cut short or overwritten giving everything before the damage and saying where, and the
``bag_recorder`` node over DDS recording what the graph publishes, latched topics included."""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from ament_index_python.packages import get_package_share_directory
from lifecycle_msgs.msg import Transition
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

from f2p_bringup.bag_recorder_node import BagRecorderNode
from f2p_failure.events import FailureEvent
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import ModelInfo, TaskProgress
from f2p_ros.bag import BagError, BagReader, BagWriter, msgtype_of, read_messages, typestore
from f2p_ros.conversions import failure_event_from_msg, failure_event_to_msg
from support.failure_fixtures import handmade_event
from support.ros import LifecycleClient, wait_until

FAILURES, PROGRESS = "/failure_events", "/task_progress"


def events(n):
    return [handmade_event(i, event_id=FailureEvent.new_id()) for i in range(n)]


def write_bag(path: Path, evs, flush_each=True, close=True) -> BagWriter:
    bag = BagWriter(path)
    bag.add_topic(FAILURES, msgtype_of(FailureEventMsg))
    bag.add_topic(PROGRESS, msgtype_of(TaskProgress))
    for i, e in enumerate(evs):
        bag.write(PROGRESS, 1_000 + i, serialize_message(TaskProgress(stage=TaskProgress.STAGE_EXECUTE, status=f"step {i}")))
        bag.write(FAILURES, 1_001 + i, serialize_message(failure_event_to_msg(e)))
        if flush_each:
            bag.flush()
    if close:
        bag.close()
    return bag


def event_ids(path) -> tuple[list[str], str | None]:
    found, damage = read_messages(path, msgtypes=[msgtype_of(FailureEventMsg)])
    return [m.decode().event_id for m in found], damage


def test_our_message_types_hash_as_rosidl_generates_them():
    store = typestore()
    folder = Path(get_package_share_directory("f2p_interfaces")) / "msg"
    names = sorted(f.stem for f in folder.glob("*.msg"))
    assert "FailureEvent" in names and len(names) >= 10
    for name in names:
        generated = json.loads((folder / f"{name}.json").read_text())["type_hashes"][0]
        assert store.hash_rihs01(f"f2p_interfaces/msg/{name}") == generated["hash_string"], name


def test_events_round_trip_through_a_bag_an_indexed_reader_accepts(tmp_path):
    evs = events(3)
    write_bag(tmp_path / "bag", evs)
    found, damage = read_messages(tmp_path / "bag")
    assert damage is None
    assert [m.topic for m in found] == [PROGRESS, FAILURES] * 3
    back = [failure_event_from_msg(m.decode()) for m in found if m.topic == FAILURES]
    for e, b in zip(evs, back):
        assert b.event_id == e.event_id and b.skill == e.skill and b.mismatches == e.mismatches
        for x, y in zip(e.observation_before, b.observation_before):
            np.testing.assert_array_equal(x, y)
    from rosbags.rosbag2 import Reader                     # the indexed reader: summary, metadata.yaml
    with Reader(tmp_path / "bag") as r:
        assert r.message_count == 6
        assert {c.topic: c.msgtype for c in r.connections} == {FAILURES: "f2p_interfaces/msg/FailureEvent",
                                                                  PROGRESS: "f2p_interfaces/msg/TaskProgress"}
        assert all(c.msgdef.data for c in r.connections)    # schemas carried for ros2 bag play
    with pytest.raises(BagError, match="never overwritten"):
        BagWriter(tmp_path / "bag")


def test_a_writer_killed_leaves_every_flushed_message_readable(tmp_path):
    evs = events(3)
    bag = write_bag(tmp_path / "bag", evs[:2], close=False)          # flushed, then "killed"
    bag.write(FAILURES, 5_000, serialize_message(failure_event_to_msg(evs[2])))   # never flushed
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "bag", killed)                        # what was on disk at the kill
    ids, damage = event_ids(killed)
    assert ids == [e.event_id for e in evs[:2]]
    assert "did not finish" in damage and not (killed / "metadata.yaml").exists()


@pytest.mark.parametrize("cut", [0.99, 0.75, 0.5])
def test_a_truncated_bag_gives_the_events_before_the_cut(tmp_path, cut):
    evs = events(4)
    write_bag(tmp_path / "bag", evs)
    mcap = tmp_path / "bag" / "bag.mcap"
    data = mcap.read_bytes()
    ids, _ = event_ids(tmp_path / "bag")
    assert ids == [e.event_id for e in evs]
    mcap.write_bytes(data[:int(len(data) * cut)])
    ids, damage = event_ids(tmp_path / "bag")
    assert ids == [e.event_id for e in evs[:len(ids)]]     # a prefix, in order, nothing invented
    assert len(ids) >= int(cut * 4) - 1 and damage and "bag.mcap is damaged at byte" in damage


def test_an_overwritten_record_stops_the_reading_there_and_keeps_what_came_before(tmp_path):
    evs = events(3)
    write_bag(tmp_path / "bag", evs)
    mcap = tmp_path / "bag" / "bag.mcap"
    data = bytearray(mcap.read_bytes())
    chunks, pos = [], 8                                       # the top-level MCAP records: opcode, u64 length
    while data[pos] != 0x0F:                                  # up to DataEnd
        if data[pos] == 0x06:
            chunks.append(pos)
        pos += 9 + struct.unpack_from("<Q", data, pos + 1)[0]
    assert len(chunks) == 3                                   # one per flush
    data[chunks[1] + 1:chunks[1] + 9] = b"\xff" * 8          # the second chunk's length: nonsense
    mcap.write_bytes(bytes(data))
    ids, damage = event_ids(tmp_path / "bag")
    assert ids == [evs[0].event_id] and "cut short" in damage


def test_what_is_not_a_bag_says_so(tmp_path):
    with pytest.raises(BagError, match="no bag"):
        BagReader(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no .mcap"):
        BagReader(tmp_path / "empty")
    (tmp_path / "text.mcap").write_text("hello")
    with pytest.raises(BagError, match="not an MCAP file"):
        read_messages(tmp_path / "text.mcap")


def test_the_recorder_node_records_the_graph_latched_topics_included(ros, tmp_path):
    pub_node = ros.node("bag_test_publisher")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    info = pub_node.create_publisher(ModelInfo, "/model_info", latched)
    info.publish(ModelInfo(version="v-latched"))                      # before the recorder exists
    progress = pub_node.create_publisher(TaskProgress, "/task_progress", 10)
    failures = pub_node.create_publisher(FailureEventMsg, "/failure_events",
                                         QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    recorder = ros.add(BagRecorderNode(context=ros.context, parameter_overrides=[
        Parameter("bag_dir", value=str(tmp_path)), Parameter("bag_name", value="run"),
        Parameter("topics", value=["model_info", "task_progress", "failure_events", "absent_topic"]),
        Parameter("flush_period_s", value=0.2), Parameter("discovery_period_s", value=0.2)]))
    driver = LifecycleClient(ros.node("bag_test_driver"), "bag_recorder")
    driver.activate()
    wait_until(lambda: len(recorder._subs) == 3)
    wait_until(lambda: failures.get_subscription_count() >= 1 and progress.get_subscription_count() >= 1)
    ev = events(1)[0]
    for i in range(5):
        progress.publish(TaskProgress(stage=TaskProgress.STAGE_EXECUTE, status=f"step {i}"))
    failures.publish(failure_event_to_msg(ev))
    wait_until(lambda: recorder.bag.counts.get("/failure_events") == 1 and recorder.bag.counts["/task_progress"] == 5
               and recorder.bag.counts["/model_info"] == 1)
    wait_until(lambda: "/failure_events" in {m.topic for m in read_messages(tmp_path / "run")[0]})  # flushed
    assert len(pub_node.get_subscriptions_info_by_topic("/task_progress")) == 1     # subscribed once, not per discovery
    assert "did not finish" in read_messages(tmp_path / "run")[1]      # while still recording
    assert driver.transition(Transition.TRANSITION_DEACTIVATE) and driver.transition(Transition.TRANSITION_CLEANUP)
    found, damage = read_messages(tmp_path / "run")
    assert damage is None
    by_topic = {}
    for m in found:
        by_topic.setdefault(m.topic, []).append(m.decode())
    assert [m.version for m in by_topic["/model_info"]] == ["v-latched"]
    assert [m.status for m in by_topic["/task_progress"]] == [f"step {i}" for i in range(5)]
    assert failure_event_from_msg(by_topic["/failure_events"][0]).event_id == ev.event_id
    offered = {t["topic_metadata"]["name"]: yaml.safe_load(t["topic_metadata"]["offered_qos_profiles"])
               for t in humble_metadata(tmp_path / "run")["topics_with_message_count"]}
    assert [(q["reliability"], q["durability"]) for q in offered["/model_info"]] == [(1, 1)]   # latched: played latched
    assert [(q["reliability"], q["durability"]) for q in offered["/task_progress"]] == [(1, 2)]  # reliable, volatile


#: The keys Humble's rosbag2 requires of metadata.yaml (rosbag2_storage/src/rosbag2_storage/
#: metadata_io.cpp, humble: version, storage, counts, topics; compression since version 3,
#: files since 5) and of each topic (name, type, serialization_format, offered_qos_profiles as a
#: string since 4); a QoS profile's nine keys with integer enums (rosbag2_transport/qos.cpp).
HUMBLE_KEYS = {"version", "storage_identifier", "duration", "starting_time", "message_count",
               "topics_with_message_count", "relative_file_paths", "compression_format", "compression_mode", "files"}
QOS_KEYS = {"history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
            "liveliness_lease_duration", "avoid_ros_namespace_conventions"}


def humble_metadata(bag: Path) -> dict:
    """``metadata.yaml`` read as Humble's rosbag2 reads it (a check of every field it needs)."""
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert HUMBLE_KEYS <= set(info), HUMBLE_KEYS - set(info)
    for t in info["topics_with_message_count"]:
        meta = t["topic_metadata"]
        assert {"name", "type", "serialization_format"} <= set(meta)
        assert isinstance(meta["offered_qos_profiles"], str), "Humble reads the profiles as a YAML string"
        for q in yaml.safe_load(meta["offered_qos_profiles"]) or []:
            assert set(q) == QOS_KEYS and all(isinstance(q[k], int) for k in ("history", "reliability", "durability",
                                                                                "liveliness"))
    return info


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_a_bag_reads_on_humble_jazzy_and_kilted_and_in_a_peers_mcap_reader(tmp_path):
    """What ros2 bag and other tools read of a bag: metadata version 8 (Humble fails on 9's
    profile lists; Jazzy and Kilted read 8: their yaml.hpp requires type_description_hash from 7,
    custom_data from 6 and ros_distro from 8), each topic's offered QoS, the install's distro;
    and in the MCAP file, read by mcap's own reader and mcap-ros2-support's decoder (not ours),
    every channel's offered_qos_profiles and topic_type_hash (rosidl's) and every message."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from f2p_ros.bag import ROS_DISTRO, bag_qos
    from f2p_ros.qos import latched
    wheels = [d for d in ("jazzy", "kilted") if _installed(f"ros-{d}-rclpy")]
    assert [ROS_DISTRO] == wheels, f"bags say {ROS_DISTRO}, the installed rclpy wheels are {wheels}"
    bag = BagWriter(tmp_path / "bag")
    bag.add_topic(PROGRESS, msgtype_of(TaskProgress), [latched()])
    bag.add_topic(FAILURES, msgtype_of(FailureEventMsg))
    for i, e in enumerate(events(2)):
        bag.write(PROGRESS, 1_000 + i, serialize_message(TaskProgress(stage=TaskProgress.STAGE_EXECUTE, status=f"s{i}")))
        bag.write(FAILURES, 1_001 + i, serialize_message(failure_event_to_msg(e)))
    bag.close()
    info = humble_metadata(tmp_path / "bag")
    assert info["version"] == 8 and info["ros_distro"] == ROS_DISTRO and "custom_data" in info
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in info["topics_with_message_count"]}
    store = typestore()
    for topic, meta in topics.items():
        assert meta["type_description_hash"] == store.hash_rihs01(meta["type"])
    (progress_qos,) = yaml.safe_load(topics[PROGRESS]["offered_qos_profiles"])
    assert (progress_qos["reliability"], progress_qos["durability"], progress_qos["depth"]) == (1, 1, 1)
    assert yaml.safe_load(topics[FAILURES]["offered_qos_profiles"]) in (None, [])
    assert bag_qos(latched()).durability.name == "TRANSIENT_LOCAL"

    with open(tmp_path / "bag" / "bag.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary.schemas and {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        for channel in summary.channels.values():
            assert channel.message_encoding == "cdr"
            assert channel.metadata["topic_type_hash"] == topics[channel.topic]["type_description_hash"]
            assert channel.metadata["offered_qos_profiles"] == topics[channel.topic]["offered_qos_profiles"]
        decoded = [(channel.topic, msg) for _schema, channel, _message, msg in reader.iter_decoded_messages()]
    assert [t for t, _ in decoded] == [PROGRESS, FAILURES] * 2
    assert [m.status for t, m in decoded if t == PROGRESS] == ["s0", "s1"]
    assert all(m.event_id for t, m in decoded if t == FAILURES)


def test_learning_from_a_bag_refuses_malformed_events_with_why_and_bad_parameters_clearly(tmp_path):
    from f2p_learning.bag_learning import BagLearningConfig, learn_from_bag
    bag = BagWriter(tmp_path / "bag")
    bag.add_topic(FAILURES, msgtype_of(FailureEventMsg))
    bag.write(FAILURES, 1, serialize_message(FailureEventMsg(event_id="no-segments")))
    good = bytearray(serialize_message(failure_event_to_msg(events(1)[0])))
    bag.write(FAILURES, 2, bytes(good[:len(good) // 2]))                   # cut CDR: does not deserialize
    bag.close()
    r = learn_from_bag(BagLearningConfig(tmp_path / "bag", tmp_path / "out"), say=lambda _m: None)
    assert r.events == [] and r.jobs == [] and r.damage is None and r.exit_code == 1
    assert "malformed failure event" in r.refused["no-segments"] and "does not deserialize" in r.refused["#1"]
    assert json.loads((tmp_path / "out" / "bag_learning.json").read_text())["refused"] == r.refused
    with pytest.raises(BagError):
        learn_from_bag(BagLearningConfig(tmp_path / "nothing", tmp_path / "out2"))
    bad = tmp_path / "learner.yaml"
    bad.write_text("learner:\n  ros__parameters:\n    epochs: 0\n    particle: 3\n")
    with pytest.raises(ValueError, match="epochs=0.*|particle: not a parameter"):
        learn_from_bag(BagLearningConfig(tmp_path / "bag", tmp_path / "out3", bad))


def test_a_flipped_byte_inside_a_chunk_fails_its_crc(tmp_path):
    """Chunks carry their CRC-32 (rosbags writes 0, "none"): one byte flipped in a message's
    payload is detected, and the reading stops there with what came before."""
    evs = events(3)
    write_bag(tmp_path / "bag", evs)
    mcap = tmp_path / "bag" / "bag.mcap"
    data = bytearray(mcap.read_bytes())
    chunks, pos = [], 8
    while data[pos] != 0x0F:
        if data[pos] == 0x06:
            chunks.append(pos)
        pos += 9 + struct.unpack_from("<Q", data, pos + 1)[0]
    assert all(struct.unpack_from("<I", data, c + 33)[0] != 0 for c in chunks)     # every chunk has a CRC
    end = chunks[1] + 9 + struct.unpack_from("<Q", data, chunks[1] + 1)[0]
    data[end - 100] ^= 0x01                                   # inside the second chunk's last message
    mcap.write_bytes(bytes(data))
    ids, damage = event_ids(tmp_path / "bag")
    assert ids == [evs[0].event_id] and "fails its CRC" in damage
