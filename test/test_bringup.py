"""Bringup: the one graph description, the launch files built from it, and the ``f2p-bringup``
runner starting the simulated robot's graph as processes — the loop end to end over DDS
(pre-trained model fails and records the event; after SwapModel to the learned child the same
task succeeds; what the rviz view shows is what the graph publishes), Ctrl-C, a node that dies,
a node that refuses to configure."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from f2p_bringup.graph import GRAPHS, RVIZ_VIEWS, graph, params_file, params_files, ros_args, rviz_config
from f2p_bringup.runner import BringupConfig, BringupError, Graph, executable
from support.bringup import Runner
from support.ros import WAIT_S, collector, wait_future

LAUNCH = Path(params_file("sim")).parents[1] / "launch"


# ---------------------------------------------------------------------------- the description
def test_graphs_share_the_stack_and_differ_in_robot_and_remaps():
    sim, stretch, ur5 = graph("sim"), graph("stretch"), graph("ur5")
    assert [n.name for n in sim] == ["sim_robot", "perception", "relation_detector", "guardian", "planner",
                                     "failure_recorder", "task_executor", "visualizer", "bag_recorder"]
    assert [n.name for n in stretch] == [n.name for n in sim[1:]]
    assert [n.name for n in ur5] == [n.name for n in sim[1:6]] + ["skill_server"] + [n.name for n in sim[6:]]
    assert next(n for n in ur5 if n.name == "skill_server").remaps == {"execute_skill": "/ur5/execute_skill"}
    assert stretch[0].name == "perception" and stretch[0].remaps["camera/points"] == "/camera/depth/color/points"
    assert stretch[0].remaps["camera/depth/image_rect_raw"] == "/camera/aligned_depth_to_color/image_raw"
    assert next(n for n in ur5 if n.name == "task_executor").remaps == {"execute_skill": "/ur5/execute_skill"}
    assert next(n for n in ur5 if n.name == "bag_recorder").remaps == {"camera/points": "/wrist_camera/depth/color/points"}
    with pytest.raises(ValueError, match="unknown robot 'r2d2'"):
        graph("r2d2")


def test_a_robot_on_its_simulated_drivers_runs_its_own_graph_unchanged():
    """ur5 --sim: sim_arm first, publishing the camera where the ur5 graph listens, then the ur5
    graph node for node; params: ur5.yaml, then ur5_sim.yaml over it; /clock followed."""
    sim = graph("ur5", sim=True)
    assert sim[0].name == "sim_arm" and sim[0].clock_source and sim[1:] == graph("ur5")
    assert sim[0].remaps == {"camera/points": next(n for n in graph("ur5") if n.name == "perception")
                             .remaps["camera/points"]}
    assert [p.name for p in params_files("ur5", sim=True)] == ["ur5.yaml", "ur5_sim.yaml"]
    args = ros_args(sim[1], params_files("ur5", sim=True))
    assert [args[i + 1] for i, a in enumerate(args) if a == "--params-file"] == [str(p) for p in params_files("ur5", True)]
    cfg = BringupConfig("ur5", sim=True)
    assert cfg.use_sim_time and cfg.nodes == sim and cfg.params_file == params_files("ur5", True)
    assert not BringupConfig("ur5").use_sim_time and BringupConfig("ur5").params_file == (params_file("ur5"),)
    with pytest.raises(ValueError, match="no simulated drivers"):
        graph("stretch", sim=True)


def test_ros_args_name_the_node_its_params_remaps_and_clock():
    perception = graph("stretch")[0]
    args = ros_args(perception, "/p.yaml", "robot1", use_sim_time=True)
    assert args[:3] == ["--ros-args", "-r", "__node:=perception"] and "__ns:=/robot1" in args
    assert args[args.index("--params-file") + 1] == "/p.yaml" and "use_sim_time:=true" in args
    assert "camera/points:=/camera/depth/color/points" in args
    clock = ros_args(graph("sim")[0], use_sim_time=True)                                 # the clock source
    assert "use_sim_time:=true" not in clock and "stamp_with_sim_time:=true" in clock


@pytest.mark.parametrize("robot", sorted(GRAPHS))
def test_every_node_of_every_graph_is_an_installed_executable(robot):
    for spec in graph(robot):
        assert executable(spec).name == spec.executable


@pytest.mark.parametrize("robot", sorted(GRAPHS))
def test_launch_files_start_the_described_graph(robot):
    path = LAUNCH / f"{robot}.launch.py"
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "robot_launch_description"]
    assert [c.args[0].value for c in calls] == [robot]
    if robot == "ur5":                         # and the same graph on its simulated drivers
        sim_calls = [n for n in ast.walk(ast.parse((LAUNCH / "ur5_sim.launch.py").read_text()))
                     if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "robot_launch_description"]
        assert [(c.args[0].value, c.keywords[0].arg, c.keywords[0].value.value) for c in sim_calls] == [
            ("ur5", "sim", True)]
    # built for real where a ROS install provides launch_ros (not on PyPI, so not in this venv)
    pytest.importorskip("launch_ros", reason="launch_ros is part of a robot's ROS install, not of the PyPI wheels")
    from launch_ros.actions import LifecycleNode
    from f2p_bringup.launch_graph import robot_launch_description
    from launch.actions import DeclareLaunchArgument
    description = robot_launch_description(robot)
    nodes = [e for e in description.entities if isinstance(e, LifecycleNode)]
    assert [n.node_executable for n in nodes] == [s.executable for s in graph(robot)]
    assert {"use_respawn", "autostart"} <= {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}


# ---------------------------------------------------------------------------- rviz views (the sim's topics are checked live below)
def rviz_topics(robot: str) -> dict[str, str]:
    """{topic: display class} of every display with a topic in ``robot``'s rviz view."""
    doc = yaml.safe_load(rviz_config(robot).read_text())
    return {d["Topic"]["Value"]: d["Class"] for d in doc["Visualization Manager"]["Displays"] if "Topic" in d}


RVIZ_TYPES = {"rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
              "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
              "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray"}


@pytest.mark.parametrize("robot", RVIZ_VIEWS)
def test_rviz_views_show_the_camera_image_cloud_and_the_markers(robot):
    topics = rviz_topics(robot)
    assert set(topics.values()) == set(RVIZ_TYPES)
    cloud = next(t for t, c in topics.items() if c.endswith("PointCloud2"))
    perception = next(n for n in graph(robot) if n.name == "perception")
    assert cloud == perception.remaps.get("camera/points", "camera/points")      # what perception listens to
    assert "markers" in topics                  # f2p's own topics relative: a namespaced graph keeps its view
    doc = yaml.safe_load(rviz_config(robot).read_text())
    camera = [d["Topic"] for d in doc["Visualization Manager"]["Displays"] if "Topic" in d and "markers" not in d["Topic"]["Value"]]
    assert camera and all(t["Reliability Policy"] == "Reliable" for t in camera)   # best effort drops 640x480 clouds


def test_diagnostics_aggregator_groups_every_node_and_the_runner():
    from f2p_bringup.graph import SIM_DRIVERS, diagnostics_config
    analyzers = yaml.safe_load(diagnostics_config().read_text())["analyzers"]["ros__parameters"]
    prefixes = [p for a in analyzers.values() if isinstance(a, dict) for p in a["startswith"]]
    nodes = {n.name for g in (*GRAPHS.values(), *SIM_DRIVERS.values()) for n in g}
    assert sorted(prefixes) == sorted({f"{n}:" for n in nodes} | {"f2p_bringup:"})     # each in one group
    assert all(a["type"] == "diagnostic_aggregator/GenericAnalyzer" for a in analyzers.values() if isinstance(a, dict))


# ---------------------------------------------------------------------------- the runner
EXAMPLE_CLIENT = Path(__file__).resolve().parents[1] / "examples" / "f2p_client.py"


def client(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE_CLIENT), *args], capture_output=True, text=True, timeout=300)


def test_the_example_client_needs_only_rclpy_and_f2p_interfaces():
    tree = ast.parse(EXAMPLE_CLIENT.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules - set(sys.stdlib_module_names) == {"rclpy", "f2p_interfaces"}


def test_runner_starts_the_sim_graph_and_the_loop_runs_over_dds(sim_graph, ros):
    from f2p_ros.actions import ActionClient
    from f2p_failure.events import list_events
    from f2p_interfaces.action import RunTask
    from f2p_interfaces.msg import Relation
    from f2p_interfaces.srv import ResetScene, SwapModel
    from f2p_ros.conversions import model_info_to_msg
    from f2p_skill_effect.checkpoint import model_info, shipped_model
    runner, tmp_path = sim_graph
    probe = ros.node("bringup_probe")
    reset = probe.create_client(ResetScene, "/reset_scene")
    run = ActionClient(probe, RunTask, "/run_task")
    assert reset.wait_for_service(timeout_sec=WAIT_S) and run.wait_for_server(timeout_sec=WAIT_S)

    def transport():
        resp = wait_future(reset.call_async(ResetScene.Request(task="transport", n_objects=3, seed=1000)))
        assert resp.success, resp.message
        goal = [Relation(predicate=g.predicate, subject_id=g.subject_id, object_id=g.object_id) for g in resp.goal]
        handle = wait_future(run.send_goal_async(RunTask.Goal(task_description="transport", goal=goal,
                                                              observe_after=resp.stamp)))
        return wait_future(handle.get_result_async(), timeout=8 * WAIT_S).result

    first = transport()
    assert (first.goal_observed, first.predictions_met, len(first.failure_event_ids)) == (True, False, 1), first.message
    spool = tmp_path / "ros_home" / "f2p" / "failure_events"
    assert [p.stem for p in list_events(spool)] == list(first.failure_event_ids)
    swap = probe.create_client(SwapModel, "/swap_model")
    assert swap.wait_for_service(timeout_sec=WAIT_S)
    learned = model_info_to_msg(model_info(shipped_model("skill_effect_transport3_learned.pt")))
    assert wait_future(swap.call_async(SwapModel.Request(model=learned))).success
    # the same task again, from the example client: f2p_interfaces and rclpy only, as another stack would
    planned = client("plan", "--reset", "transport:3:1000")
    assert planned.returncode == 0 and "p(goal) = " in planned.stdout, planned.stdout + planned.stderr
    second = client("run", "--reset", "transport:3:1000")
    assert second.returncode == 0 and "success: done" in second.stdout, second.stdout + second.stderr
    for topic, display in rviz_topics("sim").items():              # what rviz shows, the stack publishes
        assert [p.topic_type for p in probe.get_publishers_info_by_topic(topic)] == [RVIZ_TYPES[display]], topic
    runner.proc.send_signal(signal.SIGINT)                      # Ctrl-C: forwarded, every node ends
    code, out = runner.finish()
    assert code == 0 and "stopping the graph" in out


def test_runner_exits_nonzero_naming_a_node_that_died(sim_graph):
    runner, _ = sim_graph
    os.kill(runner.pid_of("perception"), signal.SIGKILL)
    code, out = runner.finish()
    assert code == 1 and "node perception exited with code" in out


@pytest.mark.runner_args("--respawn", "--respawn-delay", "0.2", "--respawn-max-retries", "1")
def test_with_respawn_a_dead_or_hung_node_comes_back_active_while_the_others_run(sim_graph, ros):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState
    runner, _ = sim_graph
    probe = ros.node("respawn_probe")
    said, respawned = collector(probe, DiagnosticArray, "/diagnostics", 50, lambda m: any(
        s.name == "f2p_bringup: perception" and s.level == DiagnosticStatus.WARN and "respawned 1 time" in s.message
        for s in m.status))
    others = {n: runner.pid_of(n) for n in ("sim_robot", "planner", "task_executor")}
    killed = runner.pid_of("perception")
    os.kill(killed, signal.SIGKILL)
    runner.wait_for(r"node perception exited with code -9: respawning it in 0.2 s \(respawn 1\)")
    runner.wait_for(r"perception respawned, active after [\d.]+ s")
    assert runner.pid_of("perception") != killed
    state = probe.create_client(GetState, "/perception/get_state")
    assert state.wait_for_service(timeout_sec=WAIT_S)
    assert wait_future(state.call_async(GetState.Request())).current_state.id == State.PRIMARY_STATE_ACTIVE
    assert respawned.wait(WAIT_S), "the runner did not say the respawn on /diagnostics"
    # a hung node (stopped: its heartbeat silent for 10 s) is killed and respawned too
    hung = runner.pid_of("visualizer")
    mark = len(runner.lines)
    os.kill(hung, signal.SIGSTOP)
    runner.wait_for(rf"node visualizer \(pid {hung}\) hung: no heartbeat for [\d.]+ s: killed it", mark)
    runner.wait_for(r"visualizer respawned, active after", mark)
    assert {n: runner.pid_of(n) for n in others} == others and runner.proc.poll() is None   # the rest kept running
    # perception's one retry is used up (it died again within RESPAWN_STABLE_S): its next death ends the graph
    os.kill(runner.pid_of("perception"), signal.SIGKILL)
    code, out = runner.finish()
    assert code == 1 and out.count("perception exited with code -9") == 2 and out.endswith("stopping the graph"), out


def test_respawn_backs_off_is_bounded_and_spares_critical_nodes():
    import time
    from f2p_bringup.graph import RESPAWN_STABLE_S
    g = Graph(BringupConfig("sim", respawn=True, respawn_delay_s=1.0, respawn_max_retries=3), log=lambda _m: None)
    delays = []
    for _ in range(3):                       # quick deaths in a row: the delay doubles
        g.started_at["perception"] = time.monotonic()
        assert g.died("perception")
        delays.append(g.respawn_delay("perception"))
    assert delays == [1.0, 2.0, 4.0]
    g.started_at["perception"] = time.monotonic()
    assert not g.died("perception")          # the fourth in a row ends the graph
    g.started_at["perception"] = time.monotonic() - RESPAWN_STABLE_S - 1
    assert g.died("perception") and g.respawn_delay("perception") == 1.0    # up a while: counted from one again
    g.started_at["sim_robot"] = time.monotonic() - 1000
    assert not g.died("sim_robot")           # critical: the world and /clock would restart
    assert not Graph(BringupConfig("sim"), log=lambda _m: None).died("perception")    # respawn off
    assert [n.name for n in graph("sim") if n.critical] == ["sim_robot"]
    assert [n.name for n in graph("ur5", sim=True) if n.critical] == ["sim_arm", "skill_server"]


def test_runner_says_which_node_refused_to_configure(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(params_file("sim").read_text().replace("require_signed: false", "require_signed: true"))
    runner = Runner(tmp_path, "--params-file", str(bad))
    code, out = runner.finish(timeout=180)
    assert code == 2 and "node planner refused to configure" in out, out


class LossyLifecycle:
    """A lifecycle node's two services as the runner sees them: change_state answers that are
    lost on the way (as Fast DDS drops a reply to a client it has not matched yet), then kept."""

    def __init__(self, start: int, outcomes: list):
        from rclpy.task import Future
        self.Future, self.state, self.outcomes, self.requests = Future, start, list(outcomes), 0

    def change_state(self):
        self.requests += 1
        outcome, answered = self.outcomes.pop(0)      # (state the node is in after it, answered?)
        future = self.Future()
        if answered:
            from lifecycle_msgs.srv import ChangeState
            future.set_result(ChangeState.Response(success=outcome != self.state))
        self.state = outcome
        return future

    def get_state(self, answered=True):
        from lifecycle_msgs.msg import State
        from lifecycle_msgs.srv import GetState
        future = self.Future()
        if answered:
            future.set_result(GetState.Response(current_state=State(id=self.state)))
        return future


@pytest.fixture
def executor():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    context = rclpy.Context()
    rclpy.init(context=context)
    ex = SingleThreadedExecutor(context=context)
    yield ex
    ex.shutdown()
    context.try_shutdown()


@pytest.mark.parametrize("outcomes, requests", [
    ([(2, False)], 1),                      # done, the answer lost: get_state says so, no second request
    ([(1, False), (2, True)], 2),           # lost before it ran: asked again, answered
    ([(1, False), (1, False), (2, True)], 3),
])
def test_a_lost_lifecycle_answer_is_recovered_from_the_nodes_state(executor, outcomes, requests):
    node = LossyLifecycle(1, outcomes)
    graph = Graph(BringupConfig(nodes=graph_nodes(), transition_timeout_s=30.0), log=lambda _m: None)
    graph._transition(executor, "planner", "configure", 2, node.change_state, node.get_state, patience=0.05)
    assert node.state == 2 and node.requests == requests


def test_a_refusal_stays_a_refusal_and_silence_ends_at_the_timeout(executor):
    graph = Graph(BringupConfig(nodes=graph_nodes(), transition_timeout_s=0.5), log=lambda _m: None)
    refused = LossyLifecycle(1, [(1, False), (1, True)])          # lost once, then refused with an answer
    with pytest.raises(BringupError, match="node planner refused to configure"):
        graph._transition(executor, "planner", "configure", 2, refused.change_state, refused.get_state,
                          patience=0.05)
    silent = LossyLifecycle(1, [(1, False)] * 100)
    with pytest.raises(BringupError, match="node planner: no answer to configure in 0.5 s"):
        graph._transition(executor, "planner", "configure", 2, silent.change_state,
                          lambda: silent.get_state(answered=False), patience=0.05)


def graph_nodes():
    return tuple(s for s in graph("sim") if s.name == "planner")
