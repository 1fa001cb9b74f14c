"""``make demo``: the robot learns from its own failure, live, over ROS 2.

The ``sim`` graph (simulated robot, perception, relations, planner, task executor, failure
recorder, visualizer) and the off-board ``learner`` start as processes (``f2p-bringup``'s
:func:`~f2p_bringup.runner.run_graph`); then, as a client would:

1. ``RunTask`` (transport, 3 objects) with the shipped pre-trained model: a step does not go as
   predicted, the task executor records a failure event durably in its spool;
2. the failure recorder ships it to the learner, which acknowledges once it is queued on disk;
3. the learner's worker runs Fail2Progress: Real2Sim classification, SVGD over states and
   actions, D+ in simulation, fine-tuning, the regression gate; the child is signed (Ed25519)
   and pushed to the planner, which checks the signature (``require_signed``) and swaps it in;
4. the same ``RunTask`` again: it succeeds as predicted;
5. both models on fresh task instances (in-process trials), for the headline figure.

Each stage is printed as it happens and kept on a timeline; the report (``report.md`` with the
camera's pictures from the graph itself, the SVGD particles and the timeline) and ``demo.json``
go to ``out``; every node's log to ``out/live/logs``; the run's rosbag2 bag (the graph's
``bag_recorder``) to ``out/live/bags/demo``, which ``f2p-learn-bag`` learns from offline. ``run_live_demo(LiveDemoConfig)`` is the
same as a library call. The one-process version of the loop is :mod:`f2p_demo.demo`.

``--learner-distro jazzy`` (or ``kilted``) starts the learner as its own ``f2p-bringup learner``
process in that distro's f2p workspace (``F2P_ROS_DISTRO=<distro> make setup`` builds it), from a
clean environment (:mod:`f2p_bringup.distro`): the robot graph on this process's distro and the
learner on the other, talking over DDS, as a Humble/Jazzy robot and a newer off-board learner
would.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from f2p_datasets.perceived import DEPTH_BACKENDS, SENSOR_NOISE, SIMULATOR
from f2p_training.train import FineTuneRecipe

from .demo import EVALUATION_SEED_BASE, demo_data, plot_particles, successes
from .graph_client import LiveDemoResult


@dataclass
class LiveDemoConfig:
    """out: the output folder (data and keys cached there); task, objects, task_seed: the task
    instance the robot fails on; eval_trials: fresh instances per model; epochs, particles,
    svgd_steps, regression_tolerance: the learner's Fail2Progress settings; worker_threads: the
    learner worker's torch threads; stage_timeout_s: longest wait for any one stage (learning
    included); data: the learner's replay and regression datasets (None: generated once);
    graph_trials: fresh instances the learned model then runs through the live graph (its
    perception in the loop), beside the in-process trials on the simulator's own segments;
    organized_camera: the simulated camera publishes every pixel (640x480, 2 Hz), as a real
    depth camera does, rather than its foveated rays (the background every 5th pixel, each
    object at about 800 rays: the simulator knows where they are); learner_distro: run the
    learner in that ROS distro's f2p workspace (module docstring; "": in this one, as a thread
    like the sim graph).

    A depth backend (``geometric``, ``convex``: what a robot runs on its plain depth cloud) runs
    the demo as a robot would: the organised camera with a structured-light sensor's noise
    (``f2p_datasets.perceived.SENSOR_NOISE``) and the learner's D+ seen through the same backend
    (issue 45 part 4)."""

    out: str | Path = "out/demo"
    task: str = "transport"
    objects: int = 3
    task_seed: int = 1000
    eval_trials: int = 10
    epochs: int = FineTuneRecipe.epochs
    particles: int = 20
    svgd_steps: int = 60
    regression_tolerance: float = 0.02
    seed: int = 0
    worker_threads: int = 2
    stage_timeout_s: float = 900.0
    perception: str = "labelled_cloud"          # the sim graph's segmentation backend (geometric: no labels used)
    data: dict[str, str] | None = None          # {"replay": folder, "regression": folder}; None: the demo's own
    graph_trials: int = 0
    organized_camera: bool = False
    learner_distro: str = ""


def bag_counts(bag: Path) -> dict[str, int]:
    """Messages per topic of a finished bag (its metadata.yaml); {} when there is none."""
    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return {t["topic_metadata"]["name"]: int(t["message_count"]) for t in info["topics_with_message_count"]}
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}


def _params(cfg: LiveDemoConfig, live: Path, data: dict, key: Path, robot_key: Path) -> tuple[Path, Path]:
    """The sim graph's and the learner's params files: the installed ones with the demo's
    folders, the learner's signing key (the planner requires signed models and commands, as on
    a robot), the robot's key (it signs its failure events; the learner enrols it) and settings."""
    import shutil
    enrolled = live / "enrolled_robots"
    enrolled.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(robot_key) + ".pub", enrolled / "sim.pub")            # the robot_id its events name
    from f2p_bringup.graph import params_file
    from f2p_skill_effect.checkpoint import shipped_model

    from f2p_learning.store import ModelStore
    # the robot's first model, signed by the learner's key like every later one
    perceived = cfg.perception in DEPTH_BACKENDS
    first = ModelStore(live / "models").add(shipped_model("skill_effect_pretrained.pt"),
                                            {"origin": "the shipped pre-trained model"}, key)
    sim = yaml.safe_load(params_file("sim").read_text())
    sim["sim_robot"]["ros__parameters"].update(task=cfg.task, objects=cfg.objects, seed=cfg.task_seed)
    sim["perception"]["ros__parameters"]["backend"] = cfg.perception
    if cfg.organized_camera or perceived:          # at 2 Hz, leaving CPU to learning; 7 MB clouds: 1 in 5 s
        sim["sim_robot"]["ros__parameters"].update(organized=True, rate_hz=2.0)
        if perceived:                              # a depth camera's noise, as the learner's perceived D+ has it
            sim["sim_robot"]["ros__parameters"]["sensor_noise"] = list(SENSOR_NOISE)
        sim["bag_recorder"]["ros__parameters"]["throttle_hz"] = 0.2
    if cfg.perception == "yolo_seg":               # the colour image: the camera's RGB-D streams, at 5 Hz,
        sim["perception"]["ros__parameters"].update(input="rgbd", max_rate_hz=3.0)   # YOLO leaving CPU to learning
        sim["sim_robot"]["ros__parameters"]["image_rate_hz"] = 5.0
    sim["planner"]["ros__parameters"].update(checkpoint=str(first.path), require_signed=True,
                                             public_key=str(key) + ".pub", model_dirs=[str(live / "models")],
                                             require_signed_commands=True, command_keys=[str(key) + ".pub"])
    sim["failure_recorder"]["ros__parameters"].update(spool_dir=str(live / "robot_spool"),
                                                      producer_keys=[str(robot_key) + ".pub"])
    sim["task_executor"]["ros__parameters"]["robot_key"] = str(robot_key)
    sim["bag_recorder"]["ros__parameters"].update(bag_dir=str(live / "bags"), bag_name="demo")
    learner = yaml.safe_load(params_file("learner").read_text())
    learner["learner"]["ros__parameters"].update(
        queue_dir=str(live / "learner_queue"), store_dir=str(live / "models"), signing_key=str(key), robot_id="sim",
        enrolled_robots=str(enrolled),
        checkpoint=str(first.path),
        replay_data=[data["replay"]], regression_data=[data["regression"]], epochs=cfg.epochs,
        particles=cfg.particles, svgd_steps=cfg.svgd_steps, regression_tolerance=cfg.regression_tolerance,
        seed=cfg.seed, worker_threads=cfg.worker_threads, perception=cfg.perception if perceived else SIMULATOR)
    (live / "sim.yaml").write_text(yaml.safe_dump(sim, sort_keys=False))
    (live / "learner.yaml").write_text(yaml.safe_dump(learner, sort_keys=False))
    return live / "sim.yaml", live / "learner.yaml"


class LearnerInDistro:
    """``f2p-bringup learner`` as a process in another distro's f2p workspace
    (:func:`f2p_bringup.distro.command_in_distro`); shaped like the graph threads it stands beside:
    ``is_alive``, ``join`` (which stops it: SIGINT, as Ctrl-C), ``ready`` once its graph runs, and
    its output in ``lines``."""

    def __init__(self, distro: str, params: Path, log_dir: Path, environment: dict[str, str]):
        from f2p_bringup.distro import command_in_distro
        cmd, env = command_in_distro(distro, ["f2p-bringup", "learner", "--params-file", str(params),
                                              "--log-dir", str(log_dir)], environment)
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.ready, self.lines = threading.Event(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "graph running" in line:
                self.ready.set()

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_live_demo(cfg: LiveDemoConfig) -> LiveDemoResult:
    """The demo (module docstring); progress on stdout, the report in ``cfg.out``."""
    from f2p_bringup.distro import current_distro
    from f2p_bringup.runner import BringupConfig, run_graph
    from f2p_failure.queue import EventQueue
    from f2p_common.weights import generate_signing_key
    from f2p_skill_effect.checkpoint import shipped_model

    from .graph_client import DemoError, Probe, fail_learn_retry

    out = Path(cfg.out)
    live = out / "live"
    shutil.rmtree(live, ignore_errors=True)              # each run starts from a robot that never failed
    live.mkdir(parents=True)
    nodes_env = {"ROS_HOME": str(live / "ros_home")}
    result = LiveDemoResult()
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[f2p demo] {time.monotonic() - t0:6.1f}s  {text}", flush=True)

    def mark(what: str, detail: str = "") -> None:
        result.timeline.append((round(time.monotonic() - t0, 1), what, detail))
        say(f"** {what}" + (f": {detail}" if detail else ""))

    say("replay and regression data for the learner (generated once, cached in out/demo/data)")
    data = cfg.data or demo_data(out / "data")
    key = out / "keys" / "learner_key.pem"
    if not key.is_file():
        generate_signing_key(key)
        say(f"made the learner's signing key {key} (the planner checks signatures with {key}.pub)")
    robot_key = out / "keys" / "robot_key.pem"
    if not robot_key.is_file():
        generate_signing_key(robot_key)
        say(f"made the robot's key {robot_key} (it signs every failure event; the learner enrols {robot_key}.pub)")
    sim_params, learner_params = _params(cfg, live, data, key, robot_key)

    stop, graphs, codes = threading.Event(), [], {}
    if cfg.learner_distro:
        learner = LearnerInDistro(cfg.learner_distro, learner_params, live / "logs", nodes_env)
        graphs.append(("learner", learner, learner.ready))
        say(f"the learner in ROS 2 {cfg.learner_distro}'s workspace (pid {learner.proc.pid}), the robot graph in "
            f"this process's ({current_distro()})")
    for robot, params in (("sim", sim_params), ("learner", learner_params))[:1 if cfg.learner_distro else 2]:
        ready = threading.Event()
        thread = threading.Thread(target=lambda r=robot, p=params, e=ready: codes.__setitem__(r, run_graph(
            BringupConfig(r, p, log_dir=live / "logs", environment=nodes_env), stop, e, log=lambda m: None)),
            daemon=True)
        thread.start()
        graphs.append((robot, thread, ready))
    try:
        for robot, thread, ready in graphs:
            while not ready.wait(0.5):
                if not thread.is_alive():
                    raise DemoError(f"the {robot} graph did not start (exit {codes.get(robot)}); logs in {live / 'logs'}")
        mark("graph running", "sim robot, perception, relations, planner, task executor, recorder, visualizer; learner")
        probe = Probe(mark)
        try:
            pictures = fail_learn_retry(cfg, probe, result, mark, say, live, out)
        finally:
            probe.close()
    except DemoError as exc:
        say(f"stopped: {exc} (node logs: {live / 'logs'})")
        _write(out, cfg, result, {})
        return result
    finally:
        stop.set()
        for _robot, thread, _ready in graphs:
            thread.join(60)
        result.learner_output = graphs[0][1].lines if cfg.learner_distro else []

    result.bag = live / "bags" / "demo"
    result.bag_messages = bag_counts(result.bag)
    say(f"the run's bag: {result.bag} ({sum(result.bag_messages.values())} messages on {len(result.bag_messages)} "
        f"topics; learn from it offline: f2p-learn-bag {result.bag} --params-file {live / 'learner.yaml'} "
        f"--out {out / 'offline'})")
    say(f"both models on {cfg.eval_trials} fresh {cfg.task}-{cfg.objects} instances (in-process trials)")
    seeds = list(range(EVALUATION_SEED_BASE, EVALUATION_SEED_BASE + cfg.eval_trials))
    if result.child_version and cfg.eval_trials:
        from f2p_sim.config import load_world_config
        from f2p_sim.episode import TrialConfig
        from f2p_sim.mujoco_backend import MujocoBackend
        from f2p_skill_effect.checkpoint import load_model
        backend = MujocoBackend(load_world_config())
        parent, pck = load_model(shipped_model("skill_effect_pretrained.pt"))
        child, cck = load_model(live / "models" / result.child_version / "model.pt")
        trial = TrialConfig(n_points=int(pck.training_data.get("points_per_object", 128)))
        result.pretrained_successes = successes(parent, pck.version, cfg.task, cfg.objects, seeds, backend, trial)
        result.learned_successes = successes(child, cck.version, cfg.task, cfg.objects, seeds, backend, trial)
        result.trials = len(seeds)
        say(f"success on fresh instances: pre-trained {result.pretrained_successes}/{len(seeds)}, "
            f"learned {result.learned_successes}/{len(seeds)}")
    event_file = EventQueue(live / "learner_queue", ()).folder / "learned" / f"{result.event_id}.f2pevent"
    particles = live / "learner_queue" / "jobs" / result.event_id / "particles.npz"
    if event_file.is_file() and particles.is_file():
        from f2p_failure.events import load_event
        pictures["SVGD particles around the failure"] = plot_particles(load_event(event_file), particles,
                                                                       out / "svgd_particles.png")
    result.report = _write(out, cfg, result, pictures)
    say(f"done: report {result.report}")
    return result


def _write(out: Path, cfg: LiveDemoConfig, r: LiveDemoResult, pictures: dict) -> Path:
    lines = [f"# f2p demo: the robot learns from its own failure ({cfg.task}, {cfg.objects} objects, seed "
             f"{cfg.task_seed})", "", f"Perception in the graph: `{cfg.perception}`"
             + (" (the simulated camera's per-point labels)." if cfg.perception == "labelled_cloud" else
                " (segments from the camera without its labels; the goal named in its segments by the simulator's "
                "true boxes)."),
             "Camera: " + ("every pixel (640x480, organised), as a real depth camera." if cfg.organized_camera else
                           "the simulator's foveated rays (objects sampled finer than the background)."),
             "",
             f"First attempt (shipped pre-trained model): **{r.first or 'not run'}**; failure event `{r.event_id}`; "
             f"learned model `{r.child_version or '-'}`; retry: **{r.retry or 'not run'}**.", ""]
    if r.trials:
        lines += [f"On {r.trials} fresh instances: pre-trained {r.pretrained_successes}/{r.trials}, learned "
                  f"{r.learned_successes}/{r.trials} successes (in-process trials on the simulator's own segments).",
                  ""]
    if r.graph_trials:
        lines += [f"Through the live graph, perception `{cfg.perception}` in the loop, the learned model on the first "
                  f"{r.graph_trials} of these instances: {r.graph_successes}/{r.graph_trials} successes.", ""]
    if r.bag is not None:
        lines += [f"The run is recorded in the rosbag2 bag `{r.bag}` (MCAP; `ros2 bag info` reads it): "
                  + ", ".join(f"{t} {n}" for t, n in sorted(r.bag_messages.items())) + ".", ""]
    lines += ["## Timeline", "", "| t (s) | what | detail |", "|---|---|---|"]
    lines += [f"| {t:.1f} | {what} | {detail.replace('|', '/')} |" for t, what, detail in r.timeline]
    lines += [""]
    for title, pic in pictures.items():
        lines += [f"### {title}", "", f"![{title}]({pic})" if pic else "(no picture: no GL backend here)", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "demo.json").write_text(json.dumps({k: v for k, v in r.__dict__.items() if k != "report"}, indent=1,
                                              default=str) + "\n")
    return out / "report.md"


def main(argv=None) -> int:
    d = LiveDemoConfig()
    p = argparse.ArgumentParser(prog="f2p-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=str(d.out))
    p.add_argument("--task-seed", type=int, default=d.task_seed)
    p.add_argument("--eval-trials", type=int, default=d.eval_trials)
    p.add_argument("--graph-trials", type=int, default=d.graph_trials,
                   help="fresh instances the learned model then runs through the graph (its perception in the loop)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs (paper: 200)")
    p.add_argument("--worker-threads", type=int, default=d.worker_threads)
    p.add_argument("--perception", default=d.perception, choices=("labelled_cloud", *DEPTH_BACKENDS, "yolo_seg"),
                   help="segmentation in the graph: the simulated camera's labels, a robot's depth backend on the "
                        "noisy organised cloud (geometric, convex; D+ perceived the same way), or "
                        "yolo_seg on the colour and depth images")
    p.add_argument("--organized-camera", action="store_true",
                   help="the simulated camera's every pixel (640x480 at 2 Hz), as a real depth camera, instead of its "
                        "foveated rays")
    p.add_argument("--learner-distro", default=d.learner_distro, choices=("", "kilted", "jazzy"),
                   help="run the learner in this ROS distro's f2p workspace (F2P_ROS_DISTRO=<distro> make setup "
                        "builds it); default: in this one")
    a = p.parse_args(argv)
    result = run_live_demo(LiveDemoConfig(a.out, task_seed=a.task_seed, eval_trials=a.eval_trials,
                                          graph_trials=a.graph_trials, epochs=a.epochs,
                                          worker_threads=a.worker_threads, perception=a.perception,
                                          organized_camera=a.organized_camera, learner_distro=a.learner_distro))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
