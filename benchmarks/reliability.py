"""Reliability and speed of the failure -> learner -> new model path (issue 30), over DDS.

``learner_kills``: the robot's ``failure_recorder`` (in this process) keeps recording real
failure events (three waiting at least, so the learner is kept busy) while the off-board ``learner`` node (a process, started as ``f2p-bringup
learner`` starts it) is SIGKILLed at a random moment after each start, ``kills`` times — during
start-up, an idle wait or any stage of a job (its worker dies with it). Then the learner runs
undisturbed until both queues are empty. Counted: events lost (acknowledged by the recorder, in
no state of the learner's queue), duplicated (in more than one state, or learned to the end
more than once), the stage each kill hit, the robot spool's largest depth (the learner absent).

``recorder_kills``: the learner stays up while the ``failure_recorder`` (a process) is
SIGKILLed at random moments as events are recorded through its ``record_failure``, ``kills``
times; an event whose call got no answer is sent again after the restart (as the task executor
would). Counted: acknowledged events that never reached the learner's queue, duplicates, and
the failure -> acknowledged-by-the-learner latency while both are up.

``live``: the live loop of ``make demo`` (:mod:`f2p_demo.live_demo`) run ``live_runs``
times with the paper's settings: failure -> acknowledged, failure -> new model active on the
robot, the hot-swap; the run's bag: messages and MB per second.

``offline``: ``f2p-learn-bag`` on a bag holding ``bag_events`` failure events (the demo's
event under fresh ids), with the demo's learner parameters: seconds per bag; and the bag
writer's rate on 640x480 clouds.

``supervision`` (issue 43): the simulated robot's whole graph started by ``f2p-bringup`` (as a
process), then one node of each type SIGSTOPped in turn (a hung node): seconds until the runner
names it and exits 3 (its heartbeat timeout is 10 s); and the runner itself SIGKILLed
``runner_kills`` times: seconds until every node it started has ended (parent-death signal),
and whether the next runner starts the graph and says what it cleaned up.

``graph_kills`` (issue 43): the simulated robot's graph and the learner, each under
``f2p-bringup --respawn`` (processes), as on a robot: a producer signs a real failure event with
the robot's key every ``event_interval_s`` and records it through ``record_failure`` (sending an
unacknowledged one again, as the task executor does), while every node type of the graph is
SIGKILLed ``kills_per_node`` times and SIGSTOPped (hung) ``hangs_per_node`` times, in rounds of a
random order, each fault waiting until the node is active again (respawned; a critical node ends
the graph, and a new runner starts it, as systemd would); then the runner itself is SIGKILLed
``runner_kills`` times (its nodes die with it; a new runner cleans up and starts the graph). Counted: events acknowledged, lost (acknowledged, never in the learner's queue) and
duplicated; seconds from each kill to the node active again, from each hang to active again
(detection by heartbeat, kill, respawn); whether the graph still runs a task afterwards.

Jobs in the kill experiments use tiny learning settings (2 epochs, 4 particles, 3 SVGD steps:
seconds per job) so that a kill can land in every stage; the learning itself is what ``make
demo`` and ``bench-f2p`` measure. Writes ``benchmarks/results/reliability.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
# merge_same_failures off: the events are copies of one failure, and each must be learned (the
# figure is each event's job surviving kills, not how many failures there were)
TINY = {"epochs": 2, "particles": 4, "svgd_steps": 3, "regression_tolerance": 1.0, "worker_threads": 1,
        "push_to_robot": False, "merge_same_failures": False}


@dataclass
class Rig:
    """What every experiment shares: the parent checkpoint, the learner's data and key, a real
    failure event of the shipped pre-trained model (transport, 3 objects, the demo's seed)."""

    work: Path
    event: object
    learner_params: dict


def make_rig(work: Path, say=print) -> Rig:
    from f2p_failure.events import FailureEvent
    from f2p_sim.config import load_world_config
    from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
    from f2p_sim.episode import TrialConfig, run_trial
    from f2p_sim.mujoco_backend import MujocoBackend
    from f2p_sim.tasks import make_task
    from f2p_common.weights import generate_signing_key
    from f2p_skill_effect.checkpoint import load_model, shipped_model
    work.mkdir(parents=True, exist_ok=True)
    say("[reliability] a failure event of the pre-trained model (transport-3, seed 1000)")
    cfg = load_world_config()
    model, ck = load_model(shipped_model("skill_effect_pretrained.pt"))
    trial = run_trial(model, ck.version, make_task("transport", 3, 1000, cfg), MujocoBackend(cfg),
                      TrialConfig(n_points=int(ck.training_data.get("points_per_object", 128))), seed=0)
    if trial.failure is None:
        raise RuntimeError(f"the pre-trained model did not fail on transport-3 seed 1000 ({trial.outcome})")
    data = {}
    for name, seed in (("replay", 1), ("regression", 2)):
        if not (work / name).is_dir():
            generate(DatagenConfig(work / name, DatagenParams(transitions=6, shard_size=6, seed=seed,
                                                              hold_out_failure_modes=True), workers=1, progress=False))
        data[name] = str(work / name)
    key = work / "learner_key.pem"
    if not key.is_file():
        generate_signing_key(key)
    params = {"checkpoint": str(shipped_model("skill_effect_pretrained.pt")), "signing_key": str(key),
              "replay_data": [data["replay"]], "regression_data": [data["regression"]], **TINY}
    assert isinstance(trial.failure, FailureEvent)
    return Rig(work, trial.failure, params)


def fresh_events(rig: Rig, n: int) -> list:
    import dataclasses

    from f2p_failure.events import FailureEvent
    return [dataclasses.replace(rig.event, event_id=FailureEvent.new_id()) for _ in range(n)]


def write_params(path: Path, node: str, values: dict) -> Path:
    path.write_text(yaml.safe_dump({node: {"ros__parameters": values}}, sort_keys=False))
    return path


class Robot:
    """This process's ROS side: a client of ``record_failure`` and a listener to the learner."""

    def __init__(self, recorder_params: dict | None = None):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from f2p_interfaces.msg import LearnerProgress
        from f2p_interfaces.srv import SubmitFailure
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.node = rclpy.create_node("reliability_bench", context=self.context)
        self.executor.add_node(self.node)
        self.recorder = None
        if recorder_params is not None:                      # the recorder in this process
            from rclpy.parameter import Parameter

            from f2p_executor.failure_recorder_node import FailureRecorderNode
            self.recorder = FailureRecorderNode(context=self.context, parameter_overrides=[
                Parameter(k, value=v) for k, v in recorder_params.items()])
            self.executor.add_node(self.recorder)
        self.progress: list[tuple[float, object]] = []
        self.node.create_subscription(LearnerProgress, "/learner/progress", lambda m: self.progress.append(
            (time.monotonic(), m)), QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
        self.record = self.node.create_client(SubmitFailure, "/record_failure")
        threading.Thread(target=self.executor.spin, daemon=True).start()
        if self.recorder is not None:
            self.recorder.trigger_configure()
            self.recorder.trigger_activate()

    def record_event(self, event, timeout: float = 10.0, signature: str = "") -> bool:
        """True once the recorder acknowledged ``event`` (stored in its spool)."""
        from f2p_interfaces.srv import SubmitFailure
        from f2p_ros.conversions import failure_event_to_msg
        if not self.record.wait_for_service(timeout_sec=timeout):
            return False
        future = self.record.call_async(SubmitFailure.Request(event=failure_event_to_msg(event), signature=signature))
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            # no answer: the recorder died mid-call, or this client stopped hearing a restarted
            # one (seen after many restarts with Fast DDS): the next call goes through a new client
            self.record.remove_pending_request(future)
            self._renew_client()
            return False
        return bool(future.result().accepted)

    def _renew_client(self) -> None:
        from f2p_interfaces.srv import SubmitFailure
        self.node.destroy_client(self.record)
        self.record = self.node.create_client(SubmitFailure, "/record_failure")

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        if self.recorder is not None:
            self.recorder.destroy_node()
        self.node.destroy_node()
        self.context.try_shutdown()


def start(robot: str, params: Path, node: str, logs: Path, env: dict):
    """One node of ``robot``'s graph as a process, configured and activated (a Graph of one)."""
    from f2p_bringup.graph import graph
    from f2p_bringup.runner import BringupConfig, Graph
    spec = next(s for s in graph(robot) if s.name == node)
    g = Graph(BringupConfig(robot, params, log_dir=logs, environment=env, nodes=(spec,)), log=lambda _m: None)
    g.start()
    g.activate()
    return g


def kill(g) -> None:
    for p in g.procs.values():
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    g.stop()


def audit(queue_dir: Path, states, ids) -> dict:
    """Where each event is in a queue: lost (nowhere), duplicated (in several states)."""
    where = {i: [s for s in ("", *states) if (queue_dir / s / f"{i}.f2pevent").is_file()] for i in ids}
    return {"lost": sorted(i for i, w in where.items() if not w),
            "duplicated": sorted(i for i, w in where.items() if len(w) > 1),
            "states": {s or "pending": sum(s in w for w in where.values()) for s in ("", *states)}}


def wait_until(predicate, timeout: float, poll: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(poll)
    return predicate()


def learner_kills(rig: Rig, kills: int, n_events: int, window_s: float, seed: int, say=print) -> dict:
    """Module docstring (learner_kills)."""
    from f2p_executor.failure_recorder_node import SPOOL_STATES
    from f2p_interfaces.msg import LearnerProgress
    from f2p_ros.conversions import stage_from_msg
    from f2p_failure.queue import EventQueue
    from f2p_learning.jobs import JOB_STATES
    work = rig.work / "learner_kills"
    work.mkdir(parents=True, exist_ok=True)
    params = write_params(work / "learner.yaml", "learner", {**rig.learner_params, "queue_dir": str(work / "queue"),
                                                             "store_dir": str(work / "models")})
    spool = EventQueue(work / "spool", SPOOL_STATES)
    robot = Robot({"spool_dir": str(work / "spool"), "retry_initial_s": 0.2, "retry_max_s": 2.0,
                   "submit_timeout_s": 10.0})
    env = {"ROS_HOME": str(work / "ros_home")}
    rng = random.Random(seed)
    todo = fresh_events(rig, n_events)
    learner_q = EventQueue(work / "queue", JOB_STATES)
    acknowledged, hit, max_depth, t0 = [], {}, 0, time.monotonic()
    try:
        for k in range(kills):
            # keep the learner busy, so that kills land in its jobs: three waiting events at least
            while todo and spool.stats().pending + learner_q.stats().pending < 3:
                e = todo.pop(0)
                if robot.record_event(e):
                    acknowledged.append(e.event_id)
            g = start("learner", params, "learner", work / "logs", env)
            wait = rng.uniform(0.0, window_s)
            threading.Event().wait(wait)
            last = [m for _t, m in robot.progress[-50:]]
            stage = stage_from_msg(LearnerProgress, last[-1].stage) if last else "idle"
            stage = "idle" if stage in ("done", "failed", "swap") else stage
            kill(g)
            hit[stage] = hit.get(stage, 0) + 1
            max_depth = max(max_depth, spool.stats().pending)
            say(f"[reliability] learner kill {k + 1}/{kills} after {wait:.1f} s ({stage}); "
                f"spool {spool.stats().pending}, learner queue {learner_q.stats().pending}")
        for e in todo:                            # the rest, if the kills ended first
            if robot.record_event(e):
                acknowledged.append(e.event_id)
        g = start("learner", params, "learner", work / "logs", env)
        drained = wait_until(lambda: spool.stats().pending == 0 and learner_q.stats().pending == 0,
                             timeout=120 + 30 * n_events)
        kill(g)
    finally:
        robot.close()
    done = {}
    for _t, m in robot.progress:
        if stage_from_msg(LearnerProgress, m.stage) in ("done", "failed"):
            done[m.event_id] = done.get(m.event_id, 0) + 1
    learner = audit(work / "queue", JOB_STATES, acknowledged)
    robot_side = audit(work / "spool", SPOOL_STATES, acknowledged)
    twice = sorted(i for i, n in done.items() if n > 1)
    return {"kills": kills, "events": n_events, "acknowledged": len(acknowledged), "drained": drained,
            "lost": len(learner["lost"]), "duplicated": len(set(learner["duplicated"]) | set(twice)),
            "learned_to_the_end_twice": twice, "learner_states": learner["states"], "robot_spool": robot_side["states"],
            "kills_by_stage": hit, "max_spool_depth": max_depth, "kill_window_s": window_s,
            "seconds": round(time.monotonic() - t0, 1)}


def recorder_kills(rig: Rig, kills: int, n_events: int, seed: int, say=print) -> dict:
    """Module docstring (recorder_kills)."""
    from f2p_executor.failure_recorder_node import SPOOL_STATES
    from f2p_interfaces.msg import LearnerProgress
    from f2p_failure.queue import EventQueue
    from f2p_learning.jobs import JOB_STATES
    work = rig.work / "recorder_kills"
    work.mkdir(parents=True, exist_ok=True)
    learner_params = write_params(work / "learner.yaml", "learner", {
        **rig.learner_params, "queue_dir": str(work / "queue"), "store_dir": str(work / "models")})
    recorder_params = write_params(work / "recorder.yaml", "failure_recorder", {
        "spool_dir": str(work / "spool"), "retry_initial_s": 0.2, "retry_max_s": 2.0, "submit_timeout_s": 10.0})
    env = {"ROS_HOME": str(work / "ros_home")}
    rng = random.Random(seed)
    robot = Robot()
    learner_q = EventQueue(work / "queue", JOB_STATES)
    learner = start("learner", learner_params, "learner", work / "logs", env)
    events = fresh_events(rig, n_events)
    per_kill = max(1, n_events // kills)
    acknowledged, latency, t0, todo = {}, [], time.monotonic(), list(events)
    try:
        for k in range(kills + 1):
            recorder = start("sim", recorder_params, "failure_recorder", work / "logs", env)
            robot.record.wait_for_service(timeout_sec=10.0)
            killer = None
            if k < kills:                        # killed at a random moment while events are recorded or shipped
                killer = threading.Timer(rng.uniform(0.0, 0.1 * per_kill + 1.0), lambda r=recorder: kill(r))
                killer.start()
            batch = todo[:per_kill] if k < kills else todo
            todo = todo[len(batch):]
            for e in batch:
                sent = time.monotonic()
                if recorder.dead() is None and robot.record_event(e, timeout=5.0):
                    acknowledged[e.event_id] = sent
                else:
                    todo.append(e)               # no answer: sent again after the restart
            if killer is not None:
                killer.join()
                say(f"[reliability] recorder kill {k + 1}/{kills}: {len(acknowledged)} acknowledged, "
                    f"{len(todo)} to resend, spool {EventQueue(work / 'spool', SPOOL_STATES).stats().pending}")
        for _try in range(5):                    # the last, undisturbed recorder takes what is left
            for e in list(todo):
                sent = time.monotonic()
                if robot.record_event(e, timeout=5.0):
                    acknowledged[e.event_id] = sent
                    todo.remove(e)
        arrived = wait_until(lambda: all(learner_q.where(i) for i in acknowledged), timeout=120)
        for _t, m in robot.progress:
            if m.stage == LearnerProgress.STAGE_QUEUED and m.event_id in acknowledged and m.status.endswith("pending"):
                latency.append(_t - acknowledged[m.event_id])
        kill(recorder)
    finally:
        kill(learner)
        robot.close()
    where = audit(work / "queue", JOB_STATES, list(acknowledged))
    return {"kills": kills, "events": n_events, "acknowledged": len(acknowledged), "arrived": arrived,
            "lost": len(where["lost"]), "duplicated": len(where["duplicated"]), "learner_states": where["states"],
            "record_to_learner_queue_s": stats(latency), "seconds": round(time.monotonic() - t0, 1)}


class _Runner:
    """``f2p-bringup <robot> [args]`` as a process, its output followed line by line."""

    def __init__(self, work: Path, robot: str = "sim", *args: str):
        import subprocess
        env = {**os.environ, "ROS_HOME": str(work / "ros_home")}
        self.proc = subprocess.Popen([sys.executable, "-m", "f2p_bringup.runner", robot, "--log-dir",
                                      str(work / f"logs_{robot}"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines, self.times, self.running, self.ended = [], [], threading.Event(), threading.Event()
        self._out = open(work / f"runner_{robot}.log", "a")       # every runner's lines, one after the other
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            self.times.append(time.monotonic())
            self._out.write(line)
            self._out.flush()
            if "graph running" in line:
                self.running.set()
        self.ended.set()

    def started(self, timeout: float) -> bool:
        """True once the graph runs; False if the runner ended first or ``timeout`` passed."""
        wait_until(lambda: self.running.is_set() or self.ended.is_set(), timeout, poll=0.2)
        return self.running.is_set()

    def said(self, text: str) -> float | None:
        """When the runner first printed a line with ``text`` (monotonic s), None if never."""
        return next((t for line, t in zip(self.lines, self.times) if text in line), None)

    def pids(self) -> dict[str, int]:
        """Each node's latest process id."""
        import re
        return {m.group(1): int(m.group(2)) for line in self.lines
                for m in [re.search(r"started (\w+) \(pid (\d+)\)", line)] if m}

    def respawned(self, node: str) -> list[str]:
        """The runner's lines saying ``node`` was respawned and is active again."""
        return [line for line in list(self.lines) if f"] {node} respawned, active after" in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def supervision(work: Path, runner_kills: int, say=print) -> dict:
    """Module docstring (supervision)."""
    from f2p_bringup.graph import graph
    work.mkdir(parents=True, exist_ok=True)
    hung, killed, t_all = {}, [], time.monotonic()
    for spec in graph("sim"):
        r = _Runner(work)
        if not r.running.wait(180):
            raise RuntimeError("the sim graph did not start:\n" + "\n".join(r.lines[-20:]))
        pid = r.pids()[spec.name]
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        code = r.proc.wait(120)
        t_exit = time.monotonic()
        named = r.said(f"node {spec.name} (pid {pid}) hung")
        hung[spec.name] = {"detected_s": round(named - t0, 2) if named else None,
                           "graph_stopped_s": round(t_exit - t0, 2), "exit_code": code, "named": named is not None}
        say(f"[reliability] {spec.name} stopped: named after {hung[spec.name]['detected_s']} s, runner exit {code} "
            f"after {hung[spec.name]['graph_stopped_s']} s")
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for k in range(runner_kills):
        r = _Runner(work)
        if not r.running.wait(180):
            raise RuntimeError("the sim graph did not start:\n" + "\n".join(r.lines[-20:]))
        cleaned = any("did not stop cleanly" in line for line in r.lines)
        pids = r.pids()
        r.proc.kill()
        t0 = time.monotonic()
        r.proc.wait(10)
        gone = wait_until(lambda: not any(_alive(p) for p in pids.values()), 60, poll=0.1)
        killed.append({"nodes_ended_s": round(time.monotonic() - t0, 2), "all_ended": gone,
                       "started_after_unclean_stop_said_so": cleaned if k else None})
        say(f"[reliability] runner kill {k + 1}: its {len(pids)} nodes ended after {killed[-1]['nodes_ended_s']} s")
    last = _Runner(work)                               # the graph after the last kill starts and says so
    started = last.running.wait(180)
    if killed:
        killed[-1]["next_runner_started"] = started and any("did not stop cleanly" in line for line in last.lines)
    last.proc.send_signal(signal.SIGINT)
    last.proc.wait(60)
    return {"hung": hung, "detection_s": stats([h["detected_s"] for h in hung.values() if h["detected_s"]]),
            "graph_stopped_s": stats([h["graph_stopped_s"] for h in hung.values()]),
            "all_named": all(h["named"] and h["exit_code"] == 3 for h in hung.values()), "runner_kills": killed,
            "seconds": round(time.monotonic() - t_all, 1)}


class _Producer:
    """The robot's task executor as far as failure events go: signs each event with the robot's
    key and records it through ``record_failure`` one every ``interval_s``, sending an
    unacknowledged one again (a recorder that is down or restarting) until it is acknowledged."""

    def __init__(self, robot: Robot, events: list, key: Path, interval_s: float):
        from f2p_failure.events import sign_event
        self.robot, self.todo, self.acknowledged = robot, list(events), []
        self._sign, self.key, self.interval_s, self.retries = sign_event, key, interval_s, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.todo and not self.stop.is_set():
            e = self.todo[0]
            if self.robot.record_event(e, timeout=5.0, signature=self._sign(e, self.key)):
                self.acknowledged.append(self.todo.pop(0).event_id)
                self.stop.wait(self.interval_s)
            else:
                self.retries += 1
                self.stop.wait(1.0)

    def close(self):
        self.stop.set()
        self.thread.join(30)


def graph_kills(rig: Rig, kills_per_node: int, hangs_per_node: int, runner_kills: int, event_interval_s: float,
                seed: int, say=print) -> dict:
    """Module docstring (graph_kills)."""
    import shutil

    from f2p_bringup.graph import RESPAWN_STABLE_S, graph, params_file
    from f2p_common.weights import generate_signing_key
    from f2p_executor.failure_recorder_node import SPOOL_STATES
    from f2p_failure.queue import EventQueue
    from f2p_learning.jobs import JOB_STATES
    work = rig.work / "graph_kills"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    robot_key = work / "robot_key.pem"
    generate_signing_key(robot_key)
    (work / "enrolled").mkdir()
    shutil.copyfile(str(robot_key) + ".pub", work / "enrolled" / f"{rig.event.robot_id}.pub")
    sim = yaml.safe_load(params_file("sim").read_text())
    sim["failure_recorder"]["ros__parameters"].update(spool_dir=str(work / "spool"), retry_initial_s=0.5,
                                                      retry_max_s=5.0, producer_keys=[str(robot_key) + ".pub"])
    sim["task_executor"]["ros__parameters"]["robot_key"] = str(robot_key)
    sim["bag_recorder"]["ros__parameters"]["bag_dir"] = str(work / "bags")
    (work / "sim.yaml").write_text(yaml.safe_dump(sim, sort_keys=False))
    write_params(work / "learner.yaml", "learner", {**rig.learner_params, "queue_dir": str(work / "queue"),
                                                    "store_dir": str(work / "models"),
                                                    "enrolled_robots": str(work / "enrolled")})
    respawn = ("--respawn",)                        # the runner's defaults: a robot's
    rng = random.Random(seed)
    nodes = [s.name for s in graph("sim")]
    t_all = time.monotonic()
    learner = _Runner(work, "learner", "--params-file", str(work / "learner.yaml"), *respawn)
    runner = _Runner(work, "sim", "--params-file", str(work / "sim.yaml"), *respawn)
    robot = Robot()
    producer = None
    result = {"kills_per_node": kills_per_node, "hangs_per_node": hangs_per_node, "runner_kills": runner_kills,
              "event_interval_s": event_interval_s, "nodes": {}, "runner": []}
    try:
        for r in (learner, runner):
            if not r.started(240):
                raise RuntimeError("a graph did not start:\n" + "\n".join(r.lines[-20:]))
        producer = _Producer(robot, fresh_events(rig, 100000), robot_key, event_interval_s)
        # rounds: each node type once per round, in a random order, SIGKILLed (or SIGSTOPped: hung);
        # a node is faulted again only after RESPAWN_STABLE_S up (so each death is a first, as a
        # robot's rare crashes are); each fault waits until the node is active again: respawned
        # by the runner, or — a critical node, whose death ends the graph — the graph restarted
        plans = {n: ["kill"] * kills_per_node + ["hang"] * hangs_per_node for n in nodes}
        for plan in plans.values():
            rng.shuffle(plan)
        critical = {s.name for s in graph("sim") if s.critical}
        up_since = {n: time.monotonic() for n in nodes}
        done, total = 0, sum(map(len, plans.values()))
        for r in range(kills_per_node + hangs_per_node):
            order = list(nodes)
            rng.shuffle(order)
            for node in order:
                how = plans[node][r]
                wait_until(lambda: time.monotonic() - up_since[node] >= RESPAWN_STABLE_S, RESPAWN_STABLE_S + 1, 0.2)
                before, pid = len(runner.respawned(node)), runner.pids()[node]
                os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
                t0 = time.monotonic()
                row = result["nodes"].setdefault(node, {"critical": node in critical, "kills": 0, "hangs": 0,
                                                        "back_s": [], "hang_back_s": []})
                if node in critical:             # the runner ends the graph naming it; a new runner starts it
                    code = runner.proc.wait(120)
                    if code not in (1, 3) or not runner.said(f"node {node}"):
                        raise RuntimeError(f"critical {node} {how}: runner exit {code}:\n" + "\n".join(runner.lines[-30:]))
                    runner, attempts = _restart(work, respawn)
                    back = attempts > 0
                    row.setdefault("graph_start_attempts", []).append(attempts)
                    up_since = dict.fromkeys(nodes, 0.0)      # a new runner: every node's first death again
                else:
                    back = wait_until(lambda: len(runner.respawned(node)) > before or runner.proc.poll() is not None,
                                      180, 0.1) and runner.proc.poll() is None
                    up_since[node] = time.monotonic()
                if not back:
                    raise RuntimeError(f"{node} did not come back after {how}:\n" + "\n".join(runner.lines[-30:]))
                row["kills" if how == "kill" else "hangs"] += 1
                row["back_s" if how == "kill" else "hang_back_s"].append(round(time.monotonic() - t0, 2))
                done += 1
                say(f"[reliability] fault {done}/{total}: {node} {how} -> active again after "
                    f"{time.monotonic() - t0:.1f} s{' (graph restarted)' if node in critical else ''}; "
                    f"events acknowledged {len(producer.acknowledged)}")
        for k in range(runner_kills):
            pids = runner.pids()
            runner.proc.kill()                    # its nodes die with it; the next runner cleans up and starts over
            runner.proc.wait(10)
            t0 = time.monotonic()
            ended = wait_until(lambda: not any(_alive(p) for p in pids.values()), 60, poll=0.1)
            runner, attempts = _restart(work, respawn)
            if not attempts:
                raise RuntimeError("the sim graph did not start again:\n" + "\n".join(runner.lines[-20:]))
            result["runner"].append({"nodes_ended": ended, "graph_running_again_s": round(time.monotonic() - t0, 1),
                                     "start_attempts": attempts,
                                     "said_what_it_cleaned_up": any("did not stop cleanly" in line
                                                                    for line in runner.lines)})
            say(f"[reliability] runner kill {k + 1}/{runner_kills}: graph running again after "
                f"{result['runner'][-1]['graph_running_again_s']} s; events acknowledged {len(producer.acknowledged)}")
        result["task_after"] = _a_task_runs(robot)
        producer.close()
        acknowledged = list(producer.acknowledged)
        spool, learner_q = EventQueue(work / "spool", SPOOL_STATES), EventQueue(work / "queue", JOB_STATES)
        arrived = wait_until(lambda: spool.stats().pending == 0 and all(learner_q.where(i) for i in acknowledged), 600)
    finally:
        if producer is not None:
            producer.close()
        robot.close()
        runner.stop()
        learner.stop()
    where = audit(work / "queue", JOB_STATES, acknowledged)
    for row in result["nodes"].values():
        row["back_s"], row["hang_back_s"] = stats(row["back_s"]), stats(row["hang_back_s"])
    on_robot = audit(work / "spool", SPOOL_STATES, where["lost"])["states"]["pending"]
    result.update({"events_acknowledged": len(acknowledged), "resent": producer.retries, "arrived": arrived,
                   # not in the learner's queue: still pending in the robot's spool (durable, not delivered
                   # in the wait), or nowhere at all (lost)
                   "not_delivered": len(where["lost"]), "still_on_robot": on_robot, "lost": len(where["lost"]) - on_robot,
                   "duplicated": len(where["duplicated"]),
                   "learner_states": where["states"], "robot_spool": audit(work / "spool", SPOOL_STATES,
                                                                            acknowledged)["states"],
                   "seconds": round(time.monotonic() - t_all, 1)})
    return result


def _restart(work: Path, respawn: tuple[str, ...], tries: int = 3) -> tuple[_Runner, int]:
    """A new runner of the sim graph, as a service manager restarts one (up to ``tries`` times
    when a start fails); it and the attempts it took (0: none started)."""
    for attempt in range(1, tries + 1):
        runner = _Runner(work, "sim", "--params-file", str(work / "sim.yaml"), *respawn)
        if runner.started(240):
            return runner, attempt
        runner.proc.wait(60)
    return runner, 0


def _a_task_runs(robot: Robot) -> dict:
    """After the campaign: the graph still runs a task end to end (reset, RunTask, observed)."""
    from f2p_interfaces.action import RunTask
    from f2p_interfaces.msg import Relation
    from f2p_interfaces.srv import ResetScene
    from f2p_ros.actions import ActionClient

    def wait(future, timeout):
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        return future.result() if done.wait(timeout) else None

    reset = robot.node.create_client(ResetScene, "/reset_scene")
    run = ActionClient(robot.node, RunTask, "/run_task")
    if not (reset.wait_for_service(timeout_sec=30) and run.wait_for_server(timeout_sec=30)):
        return {"ran": False, "why": "no reset_scene or run_task"}
    resp = wait(reset.call_async(ResetScene.Request(task="transport", n_objects=3, seed=1000)), 60)
    if resp is None or not resp.success:
        return {"ran": False, "why": "reset_scene failed"}
    goal = [Relation(predicate=g.predicate, subject_id=g.subject_id, object_id=g.object_id) for g in resp.goal]
    handle = wait(run.send_goal_async(RunTask.Goal(task_description="transport", goal=goal, observe_after=resp.stamp)), 60)
    result = wait(handle.get_result_async(), 300) if handle is not None and handle.accepted else None
    if result is None:
        return {"ran": False, "why": "no RunTask result"}
    return {"ran": True, "goal_observed": bool(result.result.goal_observed), "message": result.result.message}


def stats(xs) -> dict:
    import math
    xs = sorted(xs)
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": round(statistics.median(xs), 3), "p90": round(xs[math.ceil(0.9 * len(xs)) - 1], 3),
            "max": round(xs[-1], 3)}


def live(runs: int, out: Path, say=print) -> dict:
    """Module docstring (live)."""
    from f2p_demo.live_demo import LiveDemoConfig, run_live_demo
    rows = []
    for i in range(runs):
        r = run_live_demo(LiveDemoConfig(out / "live", eval_trials=0))
        t = {what: s for s, what, _d in r.timeline}
        rows.append({"retry": r.retry, "child": r.child_version, "detected_s": t.get("failure detected"),
                     "acknowledged_s": t.get("shipped to the learner, acknowledged (queued on its disk)"),
                     "swapped_s": t.get("swapped"), "bag_messages": sum(r.bag_messages.values())})
        detected = rows[-1]["detected_s"] or 0.0
        rows[-1]["failure_to_ack_s"] = round((rows[-1]["acknowledged_s"] or float("nan")) - detected, 2)
        rows[-1]["failure_to_new_model_s"] = round((rows[-1]["swapped_s"] or float("nan")) - detected, 1)
        # the learner's job while the robot graph runs beside it (worker_threads 2 on the shared CPU)
        rows[-1]["job_s"] = round((rows[-1]["swapped_s"] or float("nan")) - (rows[-1]["acknowledged_s"] or 0.0), 1)
        rows[-1]["fine_tune"] = next((d for _s, w, d in r.timeline if w == "fine-tuned"), "")
        bag = r.bag / "demo.mcap" if r.bag else None
        span = (r.timeline[-1][0] - r.timeline[0][0]) if r.timeline else 0.0
        rows[-1]["bag_mb"] = round(bag.stat().st_size / 1e6, 1) if bag and bag.is_file() else None
        rows[-1]["bag_mb_per_s"] = round(rows[-1]["bag_mb"] / span, 2) if rows[-1]["bag_mb"] and span else None
        say(f"[reliability] live run {i + 1}/{runs}: {rows[-1]}")
    return {"runs": rows, "failure_to_ack_s": stats([r["failure_to_ack_s"] for r in rows]),
            "failure_to_new_model_s": stats([r["failure_to_new_model_s"] for r in rows]),
            "retry_succeeded": sum(r["retry"] == "success" for r in rows)}


def offline(rig: Rig, n_events: int, params: dict, say=print) -> dict:
    """Module docstring (offline): the bag writer's rate, then f2p-learn-bag on k events."""
    import numpy as np
    from rclpy.serialization import serialize_message

    from f2p_interfaces.msg import FailureEvent as FailureEventMsg
    from f2p_learning.bag_learning import BagLearningConfig, learn_from_bag
    from f2p_ros.bag import BagWriter, msgtype_of
    from f2p_ros.conversions import failure_event_to_msg, xyz_to_cloud
    work = rig.work / "offline"
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cloud = serialize_message(xyz_to_cloud(rng.normal(size=(640 * 480, 3)).astype(np.float32),
                                           rng.integers(0, 255, (640 * 480, 3)).astype(np.uint8), frame_id="base_link"))
    writer = BagWriter(work / f"clouds_{time.time_ns()}")
    writer.add_topic("/camera/points", "sensor_msgs/msg/PointCloud2")
    t = time.monotonic()
    for i in range(30):
        writer.write("/camera/points", i, cloud)
        writer.flush()
    writer.close()
    write_s = time.monotonic() - t
    bag = work / f"events_{time.time_ns()}"
    w = BagWriter(bag)
    w.add_topic("/failure_events", msgtype_of(FailureEventMsg))
    for i, e in enumerate(fresh_events(rig, n_events)):
        w.write("/failure_events", i, serialize_message(failure_event_to_msg(e)))
    w.close()
    params_file = write_params(work / "learner.yaml", "learner", params)
    say(f"[reliability] f2p-learn-bag on {n_events} events ({params.get('epochs')} epochs)")
    r = learn_from_bag(BagLearningConfig(bag, work / f"out_{time.time_ns()}", params_file), say=lambda _m: None)
    return {"cloud_write_mb_per_s": round(30 * len(cloud) / 1e6 / write_s, 1), "cloud_mb": round(len(cloud) / 1e6, 2),
            "clouds_per_s": round(30 / write_s, 1), "bag_events": n_events, "epochs": params.get("epochs"),
            "learn_from_bag_s": r.seconds, "per_event_s": round(r.seconds / max(1, n_events), 1),
            "deployable": sum(j.deployable for j in r.jobs)}


def summary(report: dict) -> str:
    lk, rk = report.get("learner_kills"), report.get("recorder_kills")
    lines = [f"# Reliability of the failure -> learner path ({report['machine']}; {report['other_load']})", ""]
    if lk:
        lines += [f"- learner SIGKILLed {lk['kills']} times at random moments while {lk['events']} events were "
                  f"recorded: **lost {lk['lost']}, duplicated {lk['duplicated']}** (target 0 / 0); drained afterwards: "
                  f"{lk['drained']}; kills by stage {lk['kills_by_stage']}; robot spool up to {lk['max_spool_depth']} "
                  f"events while the learner was down; {lk['seconds']:.0f} s."]
    if rk:
        lines += [f"- failure_recorder SIGKILLed {rk['kills']} times while {rk['events']} events were recorded: "
                  f"**acknowledged {rk['acknowledged']} of {rk['events']}, lost {rk['lost']}, duplicated "
                  f"{rk['duplicated']}** (an event never acknowledged was never stored: its sender still holds it); "
                  f"record -> in the learner's queue {rk['record_to_learner_queue_s']} s; {rk['seconds']:.0f} s."]
    sv = report.get("supervision")
    if sv:
        lines += [f"- hung node (SIGSTOP), each of the sim graph's {len(sv['hung'])} node types once: the runner named it "
                  f"and exited 3 for all: {sv['all_named']}; named after {sv['detection_s']} s (heartbeat timeout 10 s), "
                  f"graph stopped after {sv['graph_stopped_s']} s. "
                  f"Runner SIGKILLed x{len(sv['runner_kills'])}: its nodes ended after "
                  f"{[k['nodes_ended_s'] for k in sv['runner_kills']]} s, all: "
                  f"{all(k['all_ended'] for k in sv['runner_kills'])}; the next runner started and said what it "
                  f"cleaned up: {all(k.get('next_runner_started', True) for k in sv['runner_kills'][-1:])}."]
    gk = report.get("graph_kills")
    if gk:
        back = {n: r["back_s"].get("median") for n, r in gk["nodes"].items()}
        hang = {n: r["hang_back_s"].get("median") for n, r in gk["nodes"].items() if r["hang_back_s"]["n"]}
        lines += [f"- the sim graph under `f2p-bringup --respawn` (defaults), each of its {len(gk['nodes'])} node types "
                  f"SIGKILLed {gk['kills_per_node']}x and hung (SIGSTOP) {gk['hangs_per_node']}x, then the runner "
                  f"SIGKILLed {len(gk['runner'])}x, while signed failure events were recorded: "
                  f"**{gk['events_acknowledged']} acknowledged, lost {gk['lost']}, duplicated {gk['duplicated']}**, "
                  f"not delivered to the learner within 10 min {gk['not_delivered']} (still in the robot's spool: "
                  f"{gk['still_on_robot']}); {gk['resent']} sends repeated. Kill -> active again, "
                  f"median s: {back} (critical {[n for n, r in gk['nodes'].items() if r['critical']]}: the graph "
                  f"restarted); hang -> detected (heartbeat 10 s), killed, active again: {hang}; runner kill -> graph "
                  f"running again {stats([r['graph_running_again_s'] for r in gk['runner']])} s; a task afterwards: "
                  f"{gk.get('task_after')}; {gk['seconds']:.0f} s."]
    lv = report.get("live")
    if lv:
        lines += [f"- live loop (make demo's, paper settings) x{len(lv['runs'])}: failure -> acknowledged "
                  f"{lv['failure_to_ack_s']} s; failure -> new model active on the robot {lv['failure_to_new_model_s']} s "
                  f"(target <= 300 s), of which the job {[r['job_s'] for r in lv['runs']]} s with the graph running; "
                  f"retry succeeded {lv['retry_succeeded']}/{len(lv['runs'])}; bag "
                  f"{[r['bag_mb_per_s'] for r in lv['runs']]} MB/s."]
    of = report.get("offline")
    if of:
        lines += [f"- bag writer: {of['clouds_per_s']} clouds/s of 640x480 ({of['cloud_mb']} MB each, "
                  f"{of['cloud_write_mb_per_s']} MB/s, fsynced each); f2p-learn-bag on {of['bag_events']} events "
                  f"({of['epochs']} epochs): {of['learn_from_bag_s']:.0f} s ({of['per_event_s']} s per event)."]
    return "\n".join(lines) + "\n"


@dataclass
class ReliabilityConfig:
    """What to run and how big (module docstring); work: scratch folder (None: a temporary one)."""

    learner_kill_count: int = 100
    learner_kill_events: int = 120
    kill_window_s: float = 10.0
    recorder_kill_count: int = 20
    recorder_kill_events: int = 60
    live_runs: int = 3
    bag_events: int = 2
    runner_kills: int = 3
    supervise: bool = True
    graph_kills_per_node: int = 20
    graph_hangs_per_node: int = 2
    graph_runner_kills: int = 20
    graph_event_interval_s: float = 6.0
    seed: int = 0
    work: Path | None = None
    write: bool = True
    demo_data: Path = Path("out/demo/data")        # make demo's replay / regression data (made if absent)


def run(cfg: ReliabilityConfig, say=print) -> dict:
    work = Path(cfg.work or tempfile.mkdtemp(prefix="f2p_reliability_"))
    rig = make_rig(work / "rig", say)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "other_load": "none (one job at a time)"}
    if cfg.learner_kill_count:
        report["learner_kills"] = learner_kills(rig, cfg.learner_kill_count, cfg.learner_kill_events,
                                                cfg.kill_window_s, cfg.seed, say)
    if cfg.recorder_kill_count:
        report["recorder_kills"] = recorder_kills(rig, cfg.recorder_kill_count, cfg.recorder_kill_events, cfg.seed, say)
    if cfg.supervise:
        report["supervision"] = supervision(work / "supervision", cfg.runner_kills, say)
    if cfg.graph_kills_per_node or cfg.graph_hangs_per_node or cfg.graph_runner_kills:
        report["graph_kills"] = graph_kills(rig, cfg.graph_kills_per_node, cfg.graph_hangs_per_node,
                                            cfg.graph_runner_kills, cfg.graph_event_interval_s, cfg.seed, say)
    if cfg.live_runs:
        report["live"] = live(cfg.live_runs, work, say)
    if cfg.bag_events:                    # make demo's learning: its data and settings
        from f2p_demo.demo import demo_data
        from f2p_training.train import FineTuneRecipe
        data = demo_data(Path(cfg.demo_data))
        params = {**rig.learner_params, "epochs": FineTuneRecipe.epochs, "particles": 20, "svgd_steps": 60,
                  "regression_tolerance": 0.02, "worker_threads": 2, "replay_data": [data["replay"]],
                  "regression_data": [data["regression"]]}
        report["offline"] = offline(rig, cfg.bag_events, params, say)
    if cfg.write:                         # parts not run this time keep their last results
        RESULTS.mkdir(exist_ok=True)
        old = RESULTS / "reliability.json"
        if old.is_file():
            report = {**json.loads(old.read_text()), **report}
        (RESULTS / "reliability.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        (RESULTS / "reliability.md").write_text(summary(report))
    say(summary(report))
    return report


def main(argv=None) -> int:
    d = ReliabilityConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learner-kills", type=int, default=d.learner_kill_count)
    p.add_argument("--learner-kill-events", type=int, default=d.learner_kill_events)
    p.add_argument("--recorder-kills", type=int, default=d.recorder_kill_count)
    p.add_argument("--recorder-kill-events", type=int, default=d.recorder_kill_events)
    p.add_argument("--live-runs", type=int, default=d.live_runs)
    p.add_argument("--bag-events", type=int, default=d.bag_events)
    p.add_argument("--runner-kills", type=int, default=d.runner_kills)
    p.add_argument("--no-supervision", dest="supervise", action="store_false",
                   help="skip the hung-node and runner-kill experiments")
    p.add_argument("--graph-kills", type=int, default=d.graph_kills_per_node,
                   help="SIGKILLs of each node type of the sim graph under --respawn")
    p.add_argument("--graph-hangs", type=int, default=d.graph_hangs_per_node,
                   help="SIGSTOPs (hung) of each node type of the sim graph under --respawn")
    p.add_argument("--graph-runner-kills", type=int, default=d.graph_runner_kills,
                   help="SIGKILLs of the sim graph's runner, after the node faults")
    p.add_argument("--work", default=None)
    a = p.parse_args(argv)
    run(ReliabilityConfig(a.learner_kills, a.learner_kill_events, d.kill_window_s, a.recorder_kills,
                          a.recorder_kill_events, a.live_runs, a.bag_events, a.runner_kills, a.supervise,
                          a.graph_kills, a.graph_hangs, a.graph_runner_kills, work=Path(a.work) if a.work else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
