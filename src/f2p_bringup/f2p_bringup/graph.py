"""The one declarative description of f2p's robot graph, per robot (design notes: "one description
feeds both the launch files and a small runner").

A graph is an ordered list of :class:`NodeSpec`: which executable of which package runs as which
node, its topic remaps, and whether it is a lifecycle node (activated in the graph's order).
``launch/*.launch.py`` (for a robot with ``launch_ros``) and :mod:`f2p_bringup.runner` (for a
machine without it) both start :func:`graph` — nothing else names nodes, executables or remaps.

Robots:

``sim``      the simulated robot (``sim_robot``) and the whole robot-side stack on it.
``stretch``  Hello Robot Stretch: the same stack on its head camera (realsense2_camera's
             ``/camera/depth/color/points``) and its skill server's ``/stretch/execute_skill``
             (the vendor driver and a skill server are assumed running).
``ur5``      a UR5e with an RGB-D camera: ``/wrist_camera/depth/color/points``, and f2p's skill
             server (``f2p_skills``) serving ``/ur5/execute_skill`` through UR's driver
             (``/scaled_joint_trajectory_controller``) and the Robotiq gripper's.

Each robot's parameters are ``config/<robot>.yaml`` of f2p_bringup (:data:`PARAMS_FILES`).

``sim=True`` (``f2p-bringup ur5 --sim``, ``ur5_sim.launch.py``): the robot's simulated vendor
drivers (:data:`SIM_DRIVERS`) start first, behind the real drivers' interfaces, and the robot's
graph follows unchanged; its parameters are ``config/<robot>.yaml`` with
``config/<robot>_sim.yaml`` over them (the drivers' section, no signing keys from
``/etc/f2p``).

``use_sim_time``: the simulated robot publishes /clock (physics time), but only between skills (a
skill holds the world), so timers of nodes that follow it pause during skills; the sim graph runs
on wall time by default, and its simulator then stamps what it publishes with the system clock too:
one time base per graph, and per bag (``f2p_ros.bag``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from f2p_common.resources import share_path


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: ``name`` (its ROS node name), ``package`` / ``executable`` (as for
    ``ros2 run``), ``remaps`` {from: to}, ``lifecycle`` (a managed node, activated in order),
    ``clock_source`` (it publishes /clock, so it never follows ``use_sim_time`` itself; it is
    told the graph's time base as ``stamp_with_sim_time`` and stamps its messages in it),
    ``critical`` (never respawned: its death ends the graph — a simulator whose restart would
    reset the world and send /clock back to 0, a skill server that drives an arm and must not
    come back mid-motion by itself)."""

    name: str
    package: str
    executable: str
    remaps: dict[str, str] = field(default_factory=dict)
    lifecycle: bool = True
    clock_source: bool = False
    critical: bool = False


#: The robot-side stack, in activation order (each node's inputs come up before it).
_STACK = (
    NodeSpec("perception", "f2p_perception", "perception"),
    NodeSpec("relation_detector", "f2p_relations", "relation_detector"),
    NodeSpec("guardian", "f2p_guardian", "guardian"),
    NodeSpec("planner", "f2p_planner", "planner"),
    NodeSpec("failure_recorder", "f2p_executor", "failure_recorder"),
    NodeSpec("task_executor", "f2p_executor", "task_executor"),
    NodeSpec("visualizer", "f2p_viz", "visualizer"),
    NodeSpec("bag_recorder", "f2p_bringup", "bag_recorder"),
)


def _realsense(ns: str) -> dict[str, str]:
    """The perception node's camera topics on a realsense2_camera driver in namespace ``ns`` (cloud
    on, depth aligned to colour on): the cloud, or the colour, aligned depth and CameraInfo."""
    return {"camera/points": f"{ns}/depth/color/points", "camera/color/image_raw": f"{ns}/color/image_raw",
            "camera/depth/image_rect_raw": f"{ns}/aligned_depth_to_color/image_raw",
            "camera/color/camera_info": f"{ns}/color/camera_info"}


def _on(camera: dict[str, str], skills: str, skill_server: bool = False) -> tuple[NodeSpec, ...]:
    """The stack remapped onto a robot's camera topics and skill server; ``skill_server``: f2p's
    own (``f2p_skills``) serves ``skills`` through the arm's vendor driver, started before the
    task executor."""
    remap = {"perception": camera, "bag_recorder": {"camera/points": camera["camera/points"]},
             "task_executor": {"execute_skill": skills}}
    stack = list(_STACK)
    if skill_server:
        stack.insert(stack.index(next(n for n in stack if n.name == "task_executor")),
                     NodeSpec("skill_server", "f2p_skills", "skill_server", {"execute_skill": skills}, critical=True))
    return tuple(NodeSpec(n.name, n.package, n.executable, n.remaps or remap.get(n.name, {}), critical=n.critical)
                 for n in stack)


GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    "sim": (NodeSpec("sim_robot", "f2p_sim", "sim_robot", clock_source=True, critical=True), *_STACK),
    "stretch": _on(_realsense("/camera"), "/stretch/execute_skill"),
    "ur5": _on(_realsense("/wrist_camera"), "/ur5/execute_skill", skill_server=True),
    # off-board: the learner, beside any robot graph (its swap_model reaches the robot's planner)
    "learner": (NodeSpec("learner", "f2p_learning", "learner"),),
}

#: The simulated vendor drivers of a robot (f2p_sim), publishing on the topics its graph remaps
#: the camera to: UR's and the Robotiq gripper's drivers for ``ur5`` (``sim_arm``).
SIM_DRIVERS: dict[str, tuple[NodeSpec, ...]] = {
    "ur5": (NodeSpec("sim_arm", "f2p_sim", "sim_arm", {"camera/points": "/wrist_camera/depth/color/points"},
                     clock_source=True, critical=True),),
}

#: Seconds before a node that exited is started again, when respawn is on (the launch files'
#: ``use_respawn``, the runner's ``--respawn``); the runner doubles it for each death that comes
#: within :data:`RESPAWN_STABLE_S` of the node's last start, up to :data:`RESPAWN_MAX_DELAY_S`.
RESPAWN_DELAY_S = 2.0
RESPAWN_STABLE_S = 30.0
RESPAWN_MAX_DELAY_S = 30.0
#: Deaths in a row (each within RESPAWN_STABLE_S of the last start) that are respawned; the next
#: ends the graph. A node that stayed up RESPAWN_STABLE_S starts counting again.
RESPAWN_MAX_RETRIES = 5

#: Each robot's parameter file in ``share/f2p_bringup/config/``.
PARAMS_FILES: dict[str, str] = {robot: f"{robot}.yaml" for robot in GRAPHS}


def graph(robot: str, sim: bool = False) -> tuple[NodeSpec, ...]:
    """The nodes of ``robot``'s graph, in activation order, after its simulated drivers when
    ``sim``; ValueError for an unknown robot or one without simulated drivers."""
    if robot not in GRAPHS:
        raise ValueError(f"unknown robot {robot!r}; known: {', '.join(GRAPHS)}")
    if not sim:
        return GRAPHS[robot]
    if robot not in SIM_DRIVERS:
        raise ValueError(f"robot {robot!r} has no simulated drivers; these do: {', '.join(SIM_DRIVERS)}"
                         + ("" if robot != "sim" else " (the sim graph is simulated already)"))
    return SIM_DRIVERS[robot] + GRAPHS[robot]


def params_file(robot: str = "sim") -> Path:
    """The installed ``node_name: ros__parameters:`` YAML of ``robot``."""
    graph(robot)
    return share_path("f2p_bringup", "config", PARAMS_FILES[robot])


def params_files(robot: str = "sim", sim: bool = False) -> tuple[Path, ...]:
    """The installed params files of ``robot``'s graph in the order they apply (a later file's
    value wins): ``<robot>.yaml``, then ``<robot>_sim.yaml`` when ``sim``."""
    graph(robot, sim)
    return (params_file(robot),) + ((share_path("f2p_bringup", "config", f"{robot}_sim.yaml"),) if sim else ())


#: The graphs with a camera to look at, each with its rviz2 view ``config/<robot>.rviz``.
RVIZ_VIEWS = ("sim", "stretch", "ur5")


def rviz_config(robot: str = "sim") -> Path:
    """The installed rviz2 config of ``robot``: the camera cloud and the visualizer's markers."""
    if robot not in RVIZ_VIEWS:
        raise ValueError(f"graph {robot!r} has no rviz view; these do: {', '.join(RVIZ_VIEWS)}")
    return share_path("f2p_bringup", "config", f"{robot}.rviz")


def diagnostics_config() -> Path:
    """The installed diagnostic_aggregator analyzers (``config/diagnostics.yaml``): one group per
    part of the graph, and the runner's process statuses."""
    return share_path("f2p_bringup", "config", "diagnostics.yaml")


def ros_args(spec: NodeSpec, params: str | Path | Sequence[str | Path] | None = None, namespace: str = "",
             use_sim_time: bool | None = None) -> list[str]:
    """The ``--ros-args`` that start ``spec`` as the graph describes it (name, namespace, params
    files in order, remaps, use_sim_time): what a runner passes to the executable, and what
    launch sets."""
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for path in ([params] if isinstance(params, (str, Path)) else params or ()):
        args += ["--params-file", str(path)]
    if use_sim_time is not None:
        args += ["-p", f"{'stamp_with_sim_time' if spec.clock_source else 'use_sim_time'}:="
                       f"{'true' if use_sim_time else 'false'}"]
    for src, dst in spec.remaps.items():
        args += ["-r", f"{src}:={dst}"]
    return args
