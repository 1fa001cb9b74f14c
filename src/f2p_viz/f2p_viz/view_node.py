"""``f2p-view``: f2p's failures in a browser, from a bag or live from the graph (rerun's web viewer,
served offline from its wheel; what is shown: :mod:`f2p_viz.rerun_view`).

    f2p-view --bag ~/.ros/f2p/bags/f2p_<UTC time>          # -> <bag>/view.rrd, and serve it
    f2p-view --bag <bag> --out review.rrd --no-serve       # a file to send (rerun review.rrd opens it)
    f2p-view --live [--namespace robot1]                   # the running graph, as it happens

Serving starts the wheel's ``rerun`` binary with ``--serve-web`` bound to 127.0.0.1 (rerun binds
0.0.0.0 by default): open the printed URL (or forward its two ports over ssh). rerun 0.41's
server keeps one core busy while it serves; the viewer wants a browser with a GPU (under
SwiftShader on 2 cores it takes minutes to draw a recording).
rerun's own usage analytics are off (a rerun config of f2p's own, under ``$ROS_HOME/f2p``). A damaged bag is shown up to the damage,
said on stderr; an unreadable message is skipped and counted, never the end of the view.

``view_bag(ViewConfig)`` and ``ViewerNode`` are the library side; the command line only builds
the config.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.node import Node

from f2p_common.resources import f2p_home
from f2p_failure.events import FailureEventError
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import LearnerProgress, ModelInfo as ModelInfoMsg, ModelUpdate, Plan as PlanMsg
from f2p_interfaces.msg import RelationState as RelationStateMsg, SegmentedScene as SegmentedSceneMsg, TaskProgress
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, PointCloudError, camera_cloud_from_msg, failure_event_from_msg,
                                 model_info_from_msg, plan_from_msg, progress_from_msg, relations_from_msg,
                                 scene_from_msg, stage_from_msg)
from f2p_viz.rerun_view import MAX_CLOUD_POINTS, RerunView, blueprint

#: The graph's topics the view shows (relative: in the graph's namespace), their types and QoS.
TOPICS = {
    "segmented_scene": (SegmentedSceneMsg, qos.latched), "relation_state": (RelationStateMsg, qos.latched),
    "plan": (PlanMsg, qos.latched), "task_progress": (TaskProgress, qos.latched),
    "failure_events": (FailureEventMsg, qos.events), "model_info": (ModelInfoMsg, qos.latched),
    "model_updates": (ModelUpdate, lambda: qos.latched(10)), "learner/progress": (LearnerProgress, lambda: qos.events(50)),
    "camera/points": (None, qos.sensor), "camera/pose": (None, qos.latched),
}
UNREADABLE = (ConversionError, PointCloudError, FailureEventError, ValueError, KeyError, IndexError)


@dataclass
class ViewConfig:
    """bag: a rosbag2 MCAP bag (folder or .mcap) to show; live: show the running graph instead
    (``namespace``: its namespace, ``camera_topic``: the cloud, remapped as the robot's graph
    remaps ``camera/points``); out: the .rrd written (default ``<bag>/view.rrd``; live: none
    unless given); serve: start rerun's web viewer on ``bind``:``web_port`` (its data on
    ``grpc_port``); max_cloud_points: points per logged camera cloud."""

    bag: Path | None = None
    live: bool = False
    namespace: str = ""
    camera_topic: str = "camera/points"
    out: Path | None = None
    serve: bool = True
    bind: str = "127.0.0.1"
    web_port: int = 9090
    grpc_port: int = 9876
    max_cloud_points: int = MAX_CLOUD_POINTS
    topics: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if (self.bag is None) == (not self.live):
            raise ValueError("give a bag or live, one of them")
        self.bag = Path(self.bag) if self.bag is not None else None
        if self.out is None and self.bag is not None:
            self.out = (self.bag if self.bag.is_dir() else self.bag.parent) / "view.rrd"
        self.out = Path(self.out) if self.out is not None else None


@dataclass
class ViewResult:
    """What was shown: messages per topic, those that could not be read, failures, where the
    bag was damaged (None: intact), the .rrd written, the viewer's URL (when served)."""

    messages: dict[str, int]
    unreadable: int
    failures: int
    damage: str | None
    rrd: Path | None
    url: str = ""


class Feed:
    """Routes the graph's messages (by topic, namespace stripped) to a :class:`RerunView`."""

    def __init__(self, view: RerunView, namespace: str = "", camera_topic: str = "camera/points"):
        self.view, self.ns = view, "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.camera_topic = camera_topic.lstrip("/") if camera_topic.startswith("/") else camera_topic
        self.counts: dict[str, int] = {}
        self.unreadable = 0
        self.errors: list[str] = []

    def name(self, topic: str) -> str:
        """``topic`` relative to the graph's namespace ('' for a topic the view does not show)."""
        rel = topic[len(self.ns) + 1:] if self.ns and topic.startswith(self.ns + "/") else topic.lstrip("/")
        if rel == self.camera_topic or topic.lstrip("/") == self.camera_topic:
            return "camera/points"
        return rel if rel in TOPICS else ""

    def on(self, topic: str, msg, t_ns: int) -> None:
        """Show one message of ``topic`` received or recorded at ``t_ns``."""
        name = self.name(topic)
        if not name:
            return
        self.counts[name] = self.counts.get(name, 0) + 1
        v = self.view
        try:
            if name == "segmented_scene":
                v.on_scene(t_ns, scene_from_msg(msg))
            elif name == "relation_state":
                v.on_relations(t_ns, relations_from_msg(msg))
            elif name == "plan":
                v.on_plan(t_ns, plan_from_msg(msg))
            elif name == "task_progress":
                v.on_progress(t_ns, progress_from_msg(msg))
            elif name == "failure_events":
                v.on_failure(t_ns, failure_event_from_msg(msg))
            elif name == "camera/points":
                v.on_cloud(t_ns, camera_cloud_from_msg(msg))
            elif name == "camera/pose":
                p, o = msg.pose.position, msg.pose.orientation
                v.on_camera_pose(t_ns, (p.x, p.y, p.z), (o.x, o.y, o.z, o.w))
            elif name == "model_info":
                v.on_model(t_ns, model_info_from_msg(msg))
            elif name == "model_updates":
                verdict = "learned (deployable)" if msg.deployable else f"learned, not deployable: {msg.reason}"
                v.on_model(t_ns, model_info_from_msg(msg.model), verdict)
            elif name == "learner/progress":
                v.on_learner(t_ns, msg.event_id, stage_from_msg(LearnerProgress, msg.stage), float(msg.fraction),
                             msg.status)
        except UNREADABLE as exc:
            self.unreadable += 1
            if len(self.errors) < 20:
                self.errors.append(f"{topic}: {exc}")


def _rerun_env() -> dict[str, str]:
    """The environment of the rerun process: its usage analytics off (a config of its own)."""
    config = f2p_home() / "rerun_config"
    (config / "rerun").mkdir(parents=True, exist_ok=True)
    path = config / "rerun" / "analytics.json"
    if not path.is_file():
        path.write_text(json.dumps({"analytics_enabled": False, "analytics_id": "f2p-view", "metadata": {}}))
    return {**os.environ, "XDG_CONFIG_HOME": str(config)}


def rerun_binary() -> Path:
    """The wheel's rerun executable itself (``bin/rerun`` is a Python wrapper whose child would
    outlive a terminated wrapper)."""
    import importlib.util
    return Path(importlib.util.find_spec("rerun_cli").submodule_search_locations[0]) / "rerun"


def serve(cfg: ViewConfig, rrd: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start the wheel's rerun viewer on the web (bound to ``cfg.bind``), showing ``rrd`` or
    relaying what is sent to its gRPC port; the process and the URL to open."""
    cmd = [str(rerun_binary()), "--serve-web", "--bind", cfg.bind, "--web-viewer-port", str(cfg.web_port),
           "--port", str(cfg.grpc_port), "--hide-welcome-screen"]
    if rrd is not None:
        cmd.append(str(rrd))
    proc = subprocess.Popen(cmd, env=_rerun_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # the page shows what the server's gRPC proxy streams (the file, or what is logged to it)
    return proc, f"http://{cfg.bind}:{cfg.web_port}/?url=rerun%2Bhttp://{cfg.bind}:{cfg.grpc_port}/proxy"


def view_bag(cfg: ViewConfig, say=print) -> ViewResult:
    """Every message of ``cfg.bag`` the view shows, on the bag's log-time timeline, into
    ``cfg.out`` (written whole, then renamed into place)."""
    import rerun as rr

    from f2p_ros.bag import BagReader
    reader = BagReader(cfg.bag)
    tmp = cfg.out.with_name(cfg.out.name + ".part")
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    rec = rr.RecordingStream("f2p", recording_id=f"f2p-view:{cfg.bag.resolve()}", send_properties=False)
    rec.save(tmp, default_blueprint=blueprint())
    feed = Feed(RerunView(rec, cfg.max_cloud_points), cfg.namespace, cfg.camera_topic)
    for m in reader.messages():
        if not feed.name(m.topic):
            continue
        try:
            msg = m.decode()
        except Exception as exc:                   # a message rclpy cannot deserialize: skip, count, go on
            feed.unreadable += 1
            feed.errors.append(f"{m.topic}: {exc}")
            continue
        feed.on(m.topic, msg, m.stamp_ns)
    rec.flush(timeout_sec=60.0)
    rec.disconnect()
    os.replace(tmp, cfg.out)
    for line in feed.errors:
        say(f"f2p-view: unreadable {line}")
    if reader.damage:
        say(f"f2p-view: the bag is damaged; shown up to the damage: {reader.damage}")
    return ViewResult(feed.counts, feed.unreadable, feed.view.failures, reader.damage, cfg.out)


class ViewerNode(Node):
    """The live view: subscribes to the graph's topics (:data:`TOPICS`) and logs each message at
    its arrival time into ``recording``."""

    def __init__(self, recording, cfg: ViewConfig, **kwargs):
        super().__init__("f2p_view", namespace=f"/{cfg.namespace.strip('/')}" if cfg.namespace.strip("/") else None,
                         **kwargs)
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import PointCloud2
        self.feed = Feed(RerunView(recording, cfg.max_cloud_points), cfg.namespace, cfg.camera_topic)
        self._lock = threading.Lock()
        for name, (msg_type, profile) in TOPICS.items():
            topic = cfg.camera_topic if name == "camera/points" else name
            msg_type = msg_type or (PointCloud2 if name == "camera/points" else PoseStamped)
            self.create_subscription(msg_type, topic, lambda m, n=name: self._on(n, m), profile())

    def _on(self, name: str, msg) -> None:
        with self._lock:
            self.feed.on(name, msg, time.time_ns())


def view_live(cfg: ViewConfig, stop: threading.Event, ready: threading.Event | None = None, say=print) -> ViewResult:
    """Show the running graph until ``stop`` is set: into the served viewer (``cfg.serve``)
    and/or ``cfg.out``."""
    import rerun as rr
    from rclpy.executors import SingleThreadedExecutor
    rec = rr.RecordingStream("f2p", recording_id=f"f2p-view-live-{time.time_ns()}", send_properties=False)
    sinks, proc, url = [], None, ""
    if cfg.serve:
        proc, url = serve(cfg)
        sinks.append(rr.GrpcSink(f"rerun+http://{cfg.bind}:{cfg.grpc_port}/proxy"))
    if cfg.out is not None:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        sinks.append(rr.FileSink(str(cfg.out)))
    if sinks:
        rec.set_sinks(*sinks, default_blueprint=blueprint())
    context = rclpy.Context()
    rclpy.init(context=context)
    node = ViewerNode(rec, cfg, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    if url:
        say(f"f2p-view: open {url}")
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.2)
    finally:
        rec.flush(timeout_sec=10.0)
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    feed = node.feed
    return ViewResult(feed.counts, feed.unreadable, feed.view.failures, None, cfg.out, url)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="f2p-view", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bag", type=Path, help="a rosbag2 MCAP bag (folder or .mcap)")
    src.add_argument("--live", action="store_true", help="the running graph")
    p.add_argument("--namespace", default="", help="the graph's namespace")
    p.add_argument("--camera-topic", default="camera/points",
                   help="the camera cloud (a robot's driver topic, e.g. /camera/depth/color/points)")
    p.add_argument("--out", type=Path, default=None, help="the .rrd to write (default: <bag>/view.rrd)")
    p.add_argument("--no-serve", dest="serve", action="store_false", help="write the .rrd only")
    p.add_argument("--bind", default="127.0.0.1", help="the address the web viewer listens on")
    p.add_argument("--web-port", type=int, default=9090)
    p.add_argument("--grpc-port", type=int, default=9876)
    a = p.parse_args(argv)
    os.environ.update(_rerun_env())       # before rerun's SDK starts: its usage analytics off in this process too
    try:
        cfg = ViewConfig(a.bag, a.live, a.namespace, a.camera_topic, a.out, a.serve, a.bind, a.web_port, a.grpc_port)
    except ValueError as exc:
        print(f"f2p-view: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if cfg.live:
        view_live(cfg, stop)
        return 0
    from f2p_ros.bag import BagError
    try:
        r = view_bag(cfg, say=lambda m: print(m, file=sys.stderr))
    except BagError as exc:
        print(f"f2p-view: error: {exc}", file=sys.stderr)
        return 2
    print(f"f2p-view: {sum(r.messages.values())} messages ({', '.join(f'{k} {n}' for k, n in sorted(r.messages.items()))}), "
          f"{r.failures} failure(s), {r.unreadable} unreadable -> {r.rrd}")
    if not cfg.serve:
        return 3 if r.damage else 0
    proc, url = serve(cfg, r.rrd)
    print(f"f2p-view: open {url} (Ctrl-C to stop)", flush=True)
    while not stop.wait(0.5) and proc.poll() is None:
        pass
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
    return 3 if r.damage else 0


if __name__ == "__main__":
    sys.exit(main())
