"""The robot-graph benchmarks' own pieces (benchmarks/cloud_delivery.py, benchmarks/stack.py):
the talker's 640x480 cloud is what a segmenting camera sends and its in-place stamp is where CDR
puts it; the stack summary reads its report."""
from __future__ import annotations

import struct

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2

from f2p_perception.segmentation import LabelledCloudSegmenter, SensorFrame
from f2p_ros.conversions import camera_cloud_from_msg
from support.benchmarks import load_benchmark


def test_the_talkers_cloud_is_a_segmenting_cameras_and_its_stamp_patch_lands_in_the_header():
    bench = load_benchmark("cloud_delivery.py")
    msg = bench._cloud()
    assert (msg.height, msg.width) == (480, 640) and len(msg.data) == 640 * 480 * msg.point_step
    objects = LabelledCloudSegmenter().segment(SensorFrame(camera_cloud_from_msg(msg)))
    assert sorted(o.label for o in objects) == ["cuboid"] * 5 + ["table"]
    wire = bytearray(serialize_message(msg))
    wire[4:12] = struct.pack("<iI", 1234, 567)
    back = deserialize_message(bytes(wire), PointCloud2)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (1234, 567) and back.data == msg.data


def test_stack_summary_lists_every_measure_against_its_target():
    stack = load_benchmark("stack.py")
    lat = stack.stats([0.1, 0.2, 0.3])
    report = {"machine": "x86_64, 2 cores", "graph": "sim", "camera_hz": 15.0, "other_load": "none",
              "perception_relations": [{"objects": n, "rate_hz": 14.0, "latency_s": lat} for n in (3, 5, 7)],
              "plan_task": {"latency_s": lat, "failed": 0},
              "hot_swap": {"pause_s": 0.01, "failed_requests": 0,
                           "with_swaps": {"latency_s": lat, "swaps": 9, "requests": 50, "overlapping_a_swap_s": lat,
                                          "not_overlapping_s": lat},
                           "without_swaps": {"latency_s": lat, "requests": 50}},
              "run_task": {"total_s": 9.0, "stages_s": {"observe": 0.1, "plan": 1.0}, "message": "done"},
              "relation_detector_f1": {"geometric": 0.986},
              "cloud_delivery": [{"transport": "DEFAULT", "subscription": "reliable_10", "rate_hz": 30.0,
                                  "delivered_fraction": 1.0}]}
    text = stack.summary(report)
    assert lat == {"n": 3, "median": 0.2, "p90": 0.28, "max": 0.3}
    for needle in ("transport 7 objects | 14.0 Hz", "PlanTask, transport 3 | median 200 ms", "hot-swap pause | 10 ms (median request overlapping one of 9 swaps 200 ms",
                   "0 failed of 100", "geometric 0.986", "at 30 Hz | 100.0 %"):
        assert needle in text, needle
