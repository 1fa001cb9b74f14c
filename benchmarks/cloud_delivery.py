"""Delivery of a depth camera's 640x480 clouds to the perception node over DDS on this machine
(issue 29: >= 99 % must reach perception at the camera's rate).

A talker process publishes organised 640x480 clouds as a segmenting camera does (x y z rgb +
instance + label, 307 200 points, 7.4 MB; five objects on a table) at ``rate`` Hz for
``seconds``; a listener process runs the real ``perception`` node (activated, segmenting)
with the camera subscription under test, and reports what it counted: clouds received (what
reached perception), segmented, and skipped (superseded while it segmented an older one).

The talker's QoS is a RealSense ROS 2 driver's default for its cloud (reliable, keep last 10);
it publishes pre-serialised bytes stamped in place, as cheap as a C++ driver. Subscriptions
compared (``camera_reliability`` / ``camera_queue`` parameters): reliable with a queue of 10
(the default), reliable with a queue of 1, best effort. Each runs with Fast DDS's
default builtin transports (UDP + shared memory) and with ``LARGE_DATA``
(``FASTDDS_BUILTIN_TRANSPORTS``: shared memory and TCP for data, UDP for discovery only).

    python benchmarks/cloud_delivery.py [--rates 5 15 30] [--seconds 10]

writes results/cloud_delivery.{json,md}. Loopback only, its own ROS_DOMAIN_IDs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH, HEIGHT = 640, 480
TRANSPORTS = ("DEFAULT", "LARGE_DATA")


#: (camera_reliability, camera_queue) of the perception node's camera subscription.
SUBSCRIPTIONS = {"reliable_10": ("reliable", 10), "reliable_1": ("reliable", 1), "best_effort_10": ("best_effort", 10)}
#: The talker's QoS: a RealSense ROS 2 driver's point cloud default (rmw's default profile).
TALKER_DEPTH = 10


def _cloud():
    """An organised 640x480 cloud of a segmenting camera: a table top 0.8 m away, five boxes on
    it (instances 1-5, class cuboid; the table instance 0), NaN where there is no return (3 %)."""
    from f2p_common.interfaces import CameraCloud
    from f2p_common.vocabulary import OBJECT_CLASSES
    from f2p_ros.conversions import camera_cloud_to_msg
    rng = np.random.default_rng(0)
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    x = 0.8 + 0.001 * (HEIGHT - v)                                 # REP-103 base frame: x forward, y left, z up
    y = (WIDTH / 2 - u) * 0.0015
    z = np.full(u.shape, 0.4)
    instance = np.zeros(u.shape, np.int32)
    label = np.full(u.shape, OBJECT_CLASSES.index("table"), np.int32)
    for i in range(5):
        box = (np.abs(u - (100 + 110 * i)) < 30) & (np.abs(v - 240) < 40)
        z[box] = 0.45 + 0.01 * i
        instance[box], label[box] = i + 1, OBJECT_CLASSES.index("cuboid")
    pts = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    pts[rng.random(len(pts)) < 0.03] = np.nan
    colors = rng.integers(0, 255, (len(pts), 3), dtype=np.uint8)
    return camera_cloud_to_msg(CameraCloud(pts, colors, instance.reshape(-1), label.reshape(-1), "base_link",
                                           height=HEIGHT))


def talker(rate: float, seconds: float, out: Path) -> None:
    """Publish (reliable, keep last 10: a RealSense driver's default) once the listener matched."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2
    rclpy.init()
    node = rclpy.create_node("cloud_talker")
    pub = node.create_publisher(PointCloud2, "camera/points", QoSProfile(depth=TALKER_DEPTH, reliability=ReliabilityPolicy.RELIABLE))
    from rclpy.serialization import serialize_message
    msg = _cloud()
    # Serialised once, stamped in place (CDR: a 4-byte encapsulation header, then the header's
    # stamp sec int32, nanosec uint32): a C++ driver does not spend Python's 40 ms per cloud.
    wire = bytearray(serialize_message(msg))
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3.0)                     # let discovery settle on both sides before counting
    sent, period = 0, 1.0 / rate
    t_next = time.monotonic()
    end = t_next + seconds
    while time.monotonic() < end:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        wire[4:12] = struct.pack("<iI", msg.header.stamp.sec, msg.header.stamp.nanosec)
        pub.publish(bytes(wire))
        sent += 1
        t_next += period
        time.sleep(max(0.0, t_next - time.monotonic()))
    achieved = sent / (time.monotonic() - end + seconds)
    time.sleep(3.0)                     # reliable: let the last samples be (re)sent
    out.write_text(json.dumps({"sent": sent, "bytes": len(msg.data), "achieved_hz": achieved}))
    node.destroy_node()
    rclpy.shutdown()


def listener(subscription: str, out: Path, seconds: float) -> None:
    """The perception node, activated, with ``subscription``; its counters after ``seconds``."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from f2p_perception.perception_node import PerceptionNode
    reliability, queue = SUBSCRIPTIONS[subscription]
    rclpy.init()
    node = PerceptionNode(parameter_overrides=[Parameter("camera_reliability", value=reliability),
                                               Parameter("camera_queue", value=queue)])
    node.trigger_configure()
    node.trigger_activate()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.1)
    out.write_text(json.dumps({"received": node.received, "accepted": node.accepted, "rejected": node.rejected,
                               "skipped": node.skipped}))
    node.trigger_deactivate()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()


def measure(rate: float, seconds: float, subscription: str, transport: str, domain: int, work: Path) -> dict:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(domain),
           "FASTDDS_BUILTIN_TRANSPORTS": transport, "OMP_NUM_THREADS": "1"}
    tag = f"{transport}_{subscription}_{rate:g}"
    talk, listen = work / f"talk_{tag}.json", work / f"listen_{tag}.json"
    me = [sys.executable, __file__]
    lp = subprocess.Popen(me + ["--role", "listener", "--subscriptions", subscription, "--out", str(listen),
                                "--seconds", str(seconds + 30)], env=env)
    tp = subprocess.Popen(me + ["--role", "talker", "--out", str(talk), "--seconds", str(seconds),
                                "--rates", str(rate)], env=env)
    tp.wait(seconds + 90)
    lp.wait(seconds + 90)
    sent, got = json.loads(talk.read_text()), json.loads(listen.read_text())
    return {"rate_hz": rate, "subscription": subscription, "transport": transport, "sent": sent["sent"],
            "achieved_hz": round(sent["achieved_hz"], 1), "received": got["received"],
            "delivered_fraction": round(min(got["received"], sent["sent"]) / max(1, sent["sent"]), 4),
            "segmented": got["accepted"], "skipped": got["skipped"], "rejected": got["rejected"],
            "message_bytes": sent["bytes"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=float, nargs="+", default=[5.0, 15.0, 30.0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--subscriptions", nargs="+", default=list(SUBSCRIPTIONS), choices=SUBSCRIPTIONS)
    p.add_argument("--transports", nargs="+", default=list(TRANSPORTS))
    p.add_argument("--role", choices=("talker", "listener"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--results", default=str(RESULTS))
    a = p.parse_args()
    if a.role == "talker":
        talker(a.rates[0], a.seconds, Path(a.out))
        return 0
    if a.role == "listener":
        listener(a.subscriptions[0], Path(a.out), a.seconds)
        return 0
    import tempfile
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for transport in a.transports:
            for subscription in a.subscriptions:
                for rate in a.rates:
                    row = measure(rate, a.seconds, subscription, transport, 90 + len(rows) % 9, Path(work))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "cloud_delivery", "width": WIDTH, "height": HEIGHT, "seconds": a.seconds,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"), "runs": rows}
    (out / "cloud_delivery.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# 640x480 camera clouds to the perception node over DDS", "",
             f"`python benchmarks/cloud_delivery.py`; {report['machine']}, nothing else running; {a.seconds:g} s "
             f"per row; a talker process publishing {rows[0]['message_bytes'] / 1e6:.1f} MB clouds, the perception "
             "node (segmenting) in another; `subscription` = camera_reliability_camera_queue.", "",
             "| transport | subscription | rate Hz (achieved) | sent | reached perception | segmented | skipped |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['transport']} | {r['subscription']} | {r['rate_hz']:g} ({r['achieved_hz']:g}) | {r['sent']} | "
                     f"{100 * r['delivered_fraction']:.1f} % | {r['segmented']} | {r['skipped']} |")
    (out / "cloud_delivery.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
