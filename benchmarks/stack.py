"""The robot graph over DDS (issue 29 results contract): ``make bench-stack``.

Starts the ``sim`` graph with ``f2p-bringup``'s library call (every node its own process, the
installed sim params with the camera at ``--camera-hz``) and measures from a probe node:

1. perception + relations: per camera cloud, the time from the cloud reaching the probe to its
   relation state reaching the probe (both stamped with the cloud's time), median and p90, and
   the relation states per second sustained (perception's ``max_rate_hz`` raised to the camera's
   rate), for transport scenes of 3, 5 and 7 objects;
2. ``PlanTask`` service latency for 3-object transport (the planner's defaults), median and p90;
3. hot-swap: ``PlanTask`` requests sent back to back for ``--swap-seconds``, first without and
   then while ``SwapModel`` alternates the pre-trained and the learned checkpoint every
   ``--swap-period`` s: request latency with and without swaps, the pause (the median request
   overlapping a swap call minus the median request of the same run overlapping none, 0 when
   below; the longest requests are reported too) and failed requests;
4. ``RunTask`` (transport, 3 objects, pre-trained model) wall time per stage, from its feedback;
5. the relation detector's F1 per backend and the 640x480 cloud delivery, from their own
   benchmarks' results (``relation_detector.json``, ``cloud_delivery.json``; run first by
   ``make bench-stack``).

Targets on this 2-core CPU: perception + relations >= 10 Hz for 3-7 objects, PlanTask median
<= 1 s, swap pause <= 100 ms with no failed request. Writes results/stack.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

RESULTS = Path(__file__).resolve().parent / "results"
WAIT_S = 30.0


def stats(values) -> dict:
    v = np.asarray(values, float)
    return {"n": int(len(v)), "median": round(float(np.median(v)), 4), "p90": round(float(np.percentile(v, 90)), 4),
            "max": round(float(v.max()), 4)} if len(v) else {"n": 0}


class Probe:
    """A node spinning in the background with the graph's clients and subscriptions."""

    def __init__(self):
        import rclpy
        from f2p_ros.actions import ActionClient
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2

        from f2p_interfaces.action import RunTask
        from f2p_interfaces.msg import RelationState
        from f2p_interfaces.srv import PlanTask, ResetScene, SwapModel
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("stack_bench", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.cloud_at, self.relations_at, self.lock = {}, {}, threading.Lock()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(PointCloud2, "/camera/points", self._on_cloud,
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(RelationState, "/relation_state", self._on_relations, latched)
        self.reset = self.node.create_client(ResetScene, "/reset_scene")
        self.plan = self.node.create_client(PlanTask, "/plan_task")
        self.swap = self.node.create_client(SwapModel, "/swap_model")
        self.run = ActionClient(self.node, RunTask, "/run_task")
        for c in (self.reset, self.plan, self.swap):
            assert c.wait_for_service(timeout_sec=WAIT_S), c.srv_name
        assert self.run.wait_for_server(timeout_sec=WAIT_S)

    def _on_cloud(self, msg):
        with self.lock:
            self.cloud_at[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()

    def _on_relations(self, msg):
        with self.lock:
            self.relations_at[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()

    def call(self, client, request, timeout=WAIT_S):
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"{client.srv_name}: no answer in {timeout} s")
        return future.result()

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def reset(probe: Probe, objects: int, seed: int = 1000):
    from f2p_interfaces.srv import ResetScene
    resp = probe.call(probe.reset, ResetScene.Request(task="transport", n_objects=objects, seed=seed))
    assert resp.success, resp.message
    return resp


def perception_rate(probe: Probe, objects: int, seconds: float) -> dict:
    reset(probe, objects)
    time.sleep(1.0)                                    # the first scenes of the new world
    with probe.lock:
        probe.cloud_at.clear()
        probe.relations_at.clear()
    t0 = time.monotonic()
    time.sleep(seconds)
    with probe.lock:
        clouds, relations = dict(probe.cloud_at), dict(probe.relations_at)
    latency = [relations[s] - clouds[s] for s in relations if s in clouds]
    return {"objects": objects, "clouds": len(clouds), "relation_states": len(relations),
            "rate_hz": round(len(relations) / (time.monotonic() - t0), 2), "latency_s": stats(latency)}


def plan_latency(probe: Probe, goal, repeats: int) -> dict:
    from f2p_interfaces.srv import PlanTask
    secs, failed = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        resp = probe.call(probe.plan, PlanTask.Request(goal=goal))
        secs.append(time.perf_counter() - t)
        failed += not resp.success
    return {"latency_s": stats(secs), "failed": failed}


def swap_pause(probe: Probe, goal, seconds: float, period: float) -> dict:
    from f2p_interfaces.srv import PlanTask, SwapModel
    from f2p_ros.conversions import model_info_to_msg
    from f2p_skill_effect.checkpoint import model_info, shipped_model
    models = [model_info_to_msg(model_info(shipped_model(n)))
              for n in ("skill_effect_transport3_learned.pt", "skill_effect_pretrained.pt")]

    def planning(swapping: bool) -> dict:
        requests, failed, swap_calls = [], 0, []          # (start, end) monotonic seconds
        stop = threading.Event()

        def swapper():
            k = 0
            while not stop.wait(period):
                t = time.monotonic()
                ok = probe.call(probe.swap, SwapModel.Request(model=models[k % 2])).success
                swap_calls.append((t, time.monotonic(), ok))
                k += 1
        if swapping:
            thread = threading.Thread(target=swapper, daemon=True)
            thread.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.monotonic()
            try:
                failed += not probe.call(probe.plan, PlanTask.Request(goal=goal)).success
            except TimeoutError:
                failed += 1
            requests.append((t, time.monotonic()))
        stop.set()
        if swapping:
            thread.join()
        overlaps = [any(s < e and t < f for s, f, _ in swap_calls) for t, e in requests]
        secs = [e - t for t, e in requests]
        return {"requests": len(secs), "failed": failed, "latency_s": stats(secs),
                "swaps": sum(ok for _s, _f, ok in swap_calls),
                "swap_call_s": stats([f - s for s, f, _ in swap_calls]),
                "overlapping_a_swap_s": stats([d for d, o in zip(secs, overlaps) if o]),
                "not_overlapping_s": stats([d for d, o in zip(secs, overlaps) if not o])}

    without, during = planning(False), planning(True)
    probe.call(probe.swap, SwapModel.Request(model=models[1]))        # back to the pre-trained model
    over, clear = during["overlapping_a_swap_s"], during["not_overlapping_s"]
    return {"without_swaps": without, "with_swaps": during,
            # what a swap adds to a request it overlaps, against the requests of the same run that
            # overlap none (same load); never below 0. The swap itself is a reference exchange.
            "pause_s": round(max(0.0, over["median"] - clear["median"]), 4) if over["n"] and clear["n"] else None,
            "failed_requests": during["failed"] + without["failed"]}


def run_task_stages(probe: Probe) -> dict:
    from f2p_interfaces.action import RunTask
    from f2p_interfaces.msg import TaskProgress
    from f2p_ros.conversions import stage_from_msg
    resp = reset(probe, 3)
    marks = []
    done = threading.Event()

    def feedback(msg):
        marks.append((stage_from_msg(TaskProgress, msg.feedback.progress.stage), time.monotonic()))
    t0 = time.monotonic()
    send = probe.run.send_goal_async(RunTask.Goal(task_description="transport", goal=list(resp.goal),
                                                  observe_after=resp.stamp),
                                     feedback_callback=feedback)
    send.add_done_callback(lambda _f: done.set())
    assert done.wait(WAIT_S)
    result_future = send.result().get_result_async()
    finished = threading.Event()
    result_future.add_done_callback(lambda _f: finished.set())
    assert finished.wait(600)
    t_end = time.monotonic()
    stages: dict[str, float] = {}
    for (stage, t), (_next, t_next) in zip(marks, marks[1:] + [("end", t_end)]):
        stages[stage] = round(stages.get(stage, 0.0) + t_next - t, 3)
    result = result_future.result().result
    return {"total_s": round(t_end - t0, 3), "stages_s": stages, "success": result.success,
            "goal_observed": result.goal_observed, "predictions_met": result.predictions_met,
            "message": result.message}


def from_results(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera-hz", type=float, default=15.0)
    p.add_argument("--rate-seconds", type=float, default=10.0)
    p.add_argument("--plan-repeats", type=int, default=20)
    p.add_argument("--swap-seconds", type=float, default=30.0)
    p.add_argument("--swap-period", type=float, default=1.0)
    p.add_argument("--results", default=str(RESULTS))
    a = p.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", "87")
    from f2p_bringup.graph import params_file
    from f2p_bringup.runner import BringupConfig, run_graph

    params = yaml.safe_load(params_file("sim").read_text())
    params["sim_robot"]["ros__parameters"]["rate_hz"] = a.camera_hz
    # what perception + relations sustain, not the default 10 Hz cap of the installed params
    params["perception"]["ros__parameters"]["max_rate_hz"] = a.camera_hz
    work = Path(tempfile.mkdtemp(prefix="f2p-bench-stack-"))
    (work / "sim.yaml").write_text(yaml.safe_dump(params))
    os.environ["ROS_HOME"] = str(work / "ros_home")
    stop, ready = threading.Event(), threading.Event()
    codes = []
    graph = threading.Thread(target=lambda: codes.append(run_graph(
        BringupConfig("sim", work / "sim.yaml", log_dir=work / "logs"), stop, ready,
        log=lambda m: print(m, flush=True))), daemon=True)
    graph.start()
    if not ready.wait(180):
        stop.set()
        graph.join(60)
        print(f"the graph did not start (exit {codes}); logs in {work / 'logs'}", file=sys.stderr)
        return 1
    report = {"benchmark": "stack", "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "camera_hz": a.camera_hz, "graph": "sim (f2p-bringup: six node processes)",
              "other_load": "none besides the graph and this probe"}
    probe = Probe()
    try:
        report["perception_relations"] = [perception_rate(probe, n, a.rate_seconds) for n in (3, 5, 7)]
        print(json.dumps(report["perception_relations"]), flush=True)
        goal = list(reset(probe, 3).goal)
        time.sleep(1.0)
        report["plan_task"] = plan_latency(probe, goal, a.plan_repeats)
        print(json.dumps(report["plan_task"]), flush=True)
        report["hot_swap"] = swap_pause(probe, goal, a.swap_seconds, a.swap_period)
        print(json.dumps(report["hot_swap"]), flush=True)
        report["run_task"] = run_task_stages(probe)
        print(json.dumps(report["run_task"]), flush=True)
    finally:
        probe.close()
        stop.set()
        graph.join(60)
    relations, delivery = from_results("relation_detector"), from_results("cloud_delivery")
    if relations is not None:
        report["relation_detector_f1"] = {b: relations["backends"][b]["micro_f1"] for b in relations["backends"]}
    if delivery is not None:
        report["cloud_delivery"] = [{k: r[k] for k in ("transport", "subscription", "rate_hz", "delivered_fraction")}
                                    for r in delivery["runs"]]
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stack.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "stack.md").write_text(summary(report))
    print(summary(report))
    return 0


def summary(r: dict) -> str:
    ms = lambda s: f"{1000 * s:.0f} ms"  # noqa: E731
    lines = ["# The robot graph over DDS", "",
             f"`make bench-stack`; {r['machine']}; {r['graph']}, camera {r['camera_hz']:g} Hz; {r['other_load']}.", "",
             "| measure | figure | target |", "|---|---|---|"]
    for pr in r["perception_relations"]:
        lines.append(f"| perception + relations, transport {pr['objects']} objects | {pr['rate_hz']:.1f} Hz; latency "
                     f"median {ms(pr['latency_s']['median'])}, p90 {ms(pr['latency_s']['p90'])} | >= 10 Hz |")
    pt = r["plan_task"]["latency_s"]
    lines.append(f"| PlanTask, transport 3 | median {ms(pt['median'])}, p90 {ms(pt['p90'])} | median <= 1 s |")
    hs = r["hot_swap"]
    w, wo = hs["with_swaps"], hs["without_swaps"]["latency_s"]
    lines.append(f"| hot-swap pause | {ms(hs['pause_s'])} (median request overlapping one of {w['swaps']} swaps "
                 f"{ms(w['overlapping_a_swap_s']['median'])} vs {ms(w['not_overlapping_s']['median'])} overlapping none; "
                 f"longest {ms(w['latency_s']['max'])} with swaps vs {ms(wo['max'])} without); "
                 f"{hs['failed_requests']} failed of {w['requests'] + hs['without_swaps']['requests']} "
                 "| <= 100 ms, 0 failed |")
    rt = r["run_task"]
    lines.append(f"| RunTask transport 3 (pre-trained) | {rt['total_s']:.1f} s: "
                 + ", ".join(f"{k} {v:.2f} s" for k, v in rt["stages_s"].items()) + f"; {rt['message']} | |")
    if "relation_detector_f1" in r:
        lines.append("| relation detector micro F1 | " + ", ".join(f"{k} {v:.3f}" for k, v in r["relation_detector_f1"].items())
                     + " | paper 0.92 |")
    for d in r.get("cloud_delivery", []):
        if d["subscription"] == "reliable_10" and d["transport"] == "DEFAULT":
            lines.append(f"| 640x480 clouds reaching perception at {d['rate_hz']:g} Hz | "
                         f"{100 * d['delivered_fraction']:.1f} % | >= 99 % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
