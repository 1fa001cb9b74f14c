"""The live demo's own ROS node: the client of the running graph (reset the scene, RunTask) and
the observer that turns failure events, learner progress and model changes into the demo's
timeline (used by :mod:`f2p_demo.live_demo`)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor

from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from f2p_failure.queue import EventQueue
from f2p_interfaces.action import RunTask
from f2p_interfaces.msg import FailureEvent, LearnerProgress, ModelInfo, Relation, TaskProgress
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_interfaces.srv import ResetScene
from f2p_perception.tracking import ground
from f2p_ros import qos
from f2p_ros.actions import ActionClient
from f2p_ros.conversions import box_from_msg, image_from_msg, scene_from_msg, stage_from_msg, stamp_to_ns

from .demo import EVALUATION_SEED_BASE


@dataclass
class LiveDemoResult:
    """first / retry: the two RunTask outcomes; event_id; child_version; timeline: (seconds,
    what, detail) in order; successes of both models on fresh instances; the report's path."""

    first: str = ""
    event_id: str = ""
    child_version: str = ""
    retry: str = ""
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    pretrained_successes: int | None = None
    learned_successes: int | None = None
    trials: int = 0
    graph_successes: int | None = None          # the learned model through the graph, perception in the loop
    graph_trials: int = 0
    organized_camera: bool = False
    bag: Path | None = None
    bag_messages: dict[str, int] = field(default_factory=dict)
    report: Path | None = None
    learner_output: list[str] = field(default_factory=list)   # the learner's runner, when in another distro

    @property
    def success(self) -> bool:
        return self.retry == "success"


class DemoError(RuntimeError):
    """A stage did not happen in time; the message names it and where the logs are."""


class Probe:
    """The demo's own node: the client of the graph, and the observer that builds the timeline."""

    def __init__(self, mark):
        self.mark, self.lock, self.changed = mark, threading.Lock(), threading.Condition()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("f2p_demo", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        latched = qos.latched()
        reliable = qos.events(50)
        self.events, self.progress, self.model, self.image = [], [], None, None
        self.node.create_subscription(FailureEvent, "/failure_events", self._on_event, reliable)
        self.node.create_subscription(LearnerProgress, "/learner/progress", self._on_progress, reliable)
        self.node.create_subscription(ModelInfo, "/model_info", self._on_model, latched)
        self.scenes = []
        self.node.create_subscription(SegmentedSceneMsg, "/segmented_scene", self._on_scene, latched)
        self.node.create_subscription(Image, "/camera/color/image_raw", self._on_image,
                                      qos.events(1))
        self.reset = self.node.create_client(ResetScene, "/reset_scene")
        self.reset_tracking = self.node.create_client(Trigger, "/reset_tracking")
        self.run = ActionClient(self.node, RunTask, "/run_task")

    def _notify(self):
        with self.changed:
            self.changed.notify_all()

    def _on_event(self, msg):
        self.events.append((time.monotonic(), msg))
        wrong = "; ".join(f"{m.predicate}({m.subject_id}{', ' + m.object_id if m.object_id else ''}) predicted "
                          f"p={m.probability:.2f}, observed the opposite" for m in msg.mismatches)
        self.mark("failure detected", f"event {msg.event_id[:8]}, {msg.skill.skill} on {', '.join(msg.skill.target_ids)}: "
                                      f"{wrong}")
        self._notify()

    def _on_progress(self, msg):
        self.progress.append((time.monotonic(), msg))
        self._notify()

    def _on_model(self, msg):
        self.model = (time.monotonic(), msg)
        self._notify()

    def _on_scene(self, msg):
        self.scenes.append(msg)
        del self.scenes[:-2]
        self._notify()

    def new_scene(self, task: str, objects: int, seed: int, timeout: float = 30.0):
        """Reset the simulated world to a fresh scene, then restart perception's tracking (the
        world was replaced, not moved: its objects must not inherit the old ones' ids); the
        ResetScene response."""
        resp = self.call(self.reset.call_async(ResetScene.Request(task=task, n_objects=objects, seed=seed)), timeout)
        if not resp.success:
            raise DemoError(f"reset_scene: {resp.message}")
        if not self.reset_tracking.wait_for_service(timeout_sec=timeout):
            raise DemoError("perception's reset_tracking is not available")
        tracked = self.call(self.reset_tracking.call_async(Trigger.Request()), timeout)
        if not tracked.success:
            raise DemoError(f"reset_tracking: {tracked.message}")
        return resp

    def ground_goal(self, resp, timeout: float = 30.0) -> list:
        """The reset's goal in the ids perception reports (module docstring): the simulator's true
        boxes name the segments of a fresh scene (f2p_perception.tracking.ground)."""
        after = stamp_to_ns(resp.stamp)
        fresh = lambda: next((m for m in reversed(self.scenes) if stamp_to_ns(m.header.stamp) >= after), None)  # noqa: E731
        scene = scene_from_msg(self.wait("a segmented scene taken after the reset", fresh, timeout))
        reference = [(i, label, box_from_msg(b).center) for i, label, b in zip(resp.object_ids, resp.labels, resp.boxes)]
        names = ground(reference, scene.objects)
        goal = []
        for g in resp.goal:
            missing = [x for x in (g.subject_id, g.object_id) if x and x not in names]
            if missing:
                raise DemoError(f"perception reports no segment for {missing} (scene: {scene.object_ids})")
            goal.append(Relation(predicate=g.predicate, subject_id=names[g.subject_id],
                                 object_id=names[g.object_id] if g.object_id else "", probability=g.probability))
        return goal

    def _on_image(self, msg):
        self.image = (time.monotonic(), msg)

    def wait(self, what: str, predicate, timeout: float):
        """Block until ``predicate()`` returns something truthy (re-checked on every message)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoError(f"{what}: not within {timeout:g} s")
                self.changed.wait(min(left, 0.5))

    def call(self, future, timeout: float):
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise DemoError(f"no answer within {timeout:g} s")
        return future.result()

    def picture(self, path: Path, after: float, timeout: float = 20.0) -> str | None:
        """The camera image first received after ``after`` (monotonic s), saved as PNG."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.image
            if got is not None and got[0] > after:
                import matplotlib
                matplotlib.use("Agg")
                import matplotlib.pyplot as plt
                plt.imsave(path, image_from_msg(got[1]))
                return path.name
            time.sleep(0.1)
        return None                      # no GL backend on this machine: the report says so

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def fail_learn_retry(cfg, probe: Probe, result: LiveDemoResult, mark, say, live: Path, out: Path) -> dict:
    """Fail, learn, swap, retry (module docstring 1-4); the pictures taken on the way."""
    wait = cfg.stage_timeout_s
    pictures = {}
    if not (probe.reset.wait_for_service(timeout_sec=30) and probe.run.wait_for_server(timeout_sec=30)):
        raise DemoError("the simulated robot's reset_scene or the executor's run_task is not available")
    first_model = probe.wait("the planner's model_info", lambda: probe.model, 30)[1].version

    def attempt(label: str, seed: int = cfg.task_seed):
        resp = probe.new_scene(cfg.task, cfg.objects, seed)
        goal = list(resp.goal) if cfg.perception == "labelled_cloud" else probe.ground_goal(resp)
        say(f"{label}: RunTask {cfg.task} with {cfg.objects} objects, goal "
            + " ∧ ".join(f"{g.predicate}({g.subject_id}, {g.object_id})" for g in goal))
        handle = probe.call(probe.run.send_goal_async(
            RunTask.Goal(task_description=cfg.task, goal=goal, observe_after=resp.stamp),
            feedback_callback=lambda f: say(f"   [{stage_from_msg(TaskProgress, f.feedback.progress.stage)}] "
                                             f"{f.feedback.progress.status}")), 30)
        if not handle.accepted:
            raise DemoError("run_task refused the goal")
        res = probe.call(handle.get_result_async(), wait).result
        # The events the task recorded reach us on their topic, racing the action's result: take
        # them in before going on, so the timeline tells the failure before the task's outcome.
        ids = set(res.failure_event_ids)
        probe.wait("the task's failure events on failure_events",
                   lambda: ids <= {m.event_id for _t, m in list(probe.events)}, 10)
        return res

    t_reset = time.monotonic()
    pictures["The scene (pre-trained model about to act)"] = probe.picture(out / "scene_before.png", t_reset + 0.6)
    first = attempt("attempt 1, the shipped pre-trained model " + first_model)
    result.first = "success" if first.success else "failure"
    say(f"   result: {first.message}")
    if not first.failure_event_ids:
        raise DemoError(f"the first attempt recorded no failure event ({first.message}): nothing to learn from")
    result.event_id = event_id = first.failure_event_ids[0]
    pictures["After the failed step (pre-trained model)"] = probe.picture(out / "scene_after_failure.png",
                                                                          time.monotonic())
    spool = EventQueue(live / "robot_spool", ("shipped",))
    probe.wait("the event in the robot's spool", lambda: spool.where(event_id), 30)
    mark("persisted", f"{event_id[:8]}.f2pevent fsynced in the robot's spool")

    stages = {"queued": "shipped to the learner, acknowledged (queued on its disk)", "classify": "job started: Real2Sim "
              "classification", "infer": "SVGD over states and actions", "simulate": "D+ simulated",
              "fine_tune": "fine-tuned", "validate": "regression gate", "store": "signed and stored",
              "swap": "pushed to the planner"}
    seen = set()

    def progressed():
        # acknowledged = moved to the spool's shipped/ (the recorder moves it only then): the truth,
        # where the learner's volatile "queued" message may pass before this process has matched
        # the learner's publisher; later stages wait for it, so the timeline keeps its order
        if "queued" not in seen:
            if spool.where(event_id) != "shipped":
                return False
            seen.add("queued")
            mark(stages["queued"], "moved to shipped/ in the robot's spool")
        for _t, m in list(probe.progress):
            stage = stage_from_msg(LearnerProgress, m.stage)
            if m.event_id == event_id and stage not in seen:
                seen.add(stage)
                if stage in stages:
                    mark(stages[stage], m.status[:160])
                if stage == "failed":
                    raise DemoError(f"the learner's job failed: {m.status}")
        return "swap" in seen
    probe.wait("learning from the failure", progressed, wait)
    model = probe.wait("the planner swapping in the new model",
                       lambda: probe.model if probe.model[1].version != first_model else None, 60)[1]
    result.child_version = model.version
    mark("swapped", f"the planner serves {model.version} (parent {model.parent_version}), signature checked")

    second = attempt(f"attempt 2, the learned model {model.version}")
    result.retry = "success" if second.success else "failure"
    mark("retry succeeded" if second.success else "retry failed", second.message)
    pictures["After the retry (learned model)"] = probe.picture(out / "scene_after_retry.png", time.monotonic())
    if cfg.graph_trials:                  # fresh instances through the graph: perception in the loop
        seeds = range(EVALUATION_SEED_BASE, EVALUATION_SEED_BASE + cfg.graph_trials)
        wins = 0
        for seed in seeds:
            try:
                res = attempt(f"fresh instance {seed}, the learned model", seed)
                wins += bool(res.success)
                say(f"   fresh instance {seed}: {res.message}")
            except DemoError as exc:             # e.g. perception misses an object the goal names: a failure
                say(f"   fresh instance {seed}: not run: {exc}")
        result.graph_trials, result.graph_successes = len(seeds), wins
        mark("fresh instances through the graph", f"the learned model succeeded on {wins}/{len(seeds)}")
    return pictures


