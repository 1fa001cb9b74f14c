"""The launch description of a robot's graph (``launch/<robot>.launch.py``), built from
:func:`f2p_bringup.graph.graph` like the runner. Needs ``launch`` and ``launch_ros`` (a robot's
ROS 2 install; they are not on PyPI), imported only when a description is built.

Arguments, as navigation2's bringup takes them: ``params_file`` (default: the robot's installed
``config/<robot>.yaml``), ``namespace``, ``use_sim_time``, ``autostart`` (configure, then
activate, every lifecycle node as it comes up) and ``rviz`` (start rviz2 with
``config/<robot>.rviz``). ``sim``: the robot's simulated vendor drivers first
(``launch/<robot>_sim.launch.py``), and ``sim_params_file`` (default: the installed
``config/<robot>_sim.yaml``) over ``params_file``.
"""
from __future__ import annotations

from f2p_bringup.graph import RVIZ_VIEWS, graph, params_file, params_files, rviz_config


def robot_launch_description(robot: str, sim: bool = False):
    """The LaunchDescription of ``robot``'s graph (after its simulated drivers when ``sim``)."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
    from launch.conditions import IfCondition
    from launch.events import matches_action
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from launch_ros.parameter_descriptions import ParameterValue
    from lifecycle_msgs.msg import Transition

    params, namespace = LaunchConfiguration("params_file"), LaunchConfiguration("namespace")
    use_sim_time, autostart = LaunchConfiguration("use_sim_time"), LaunchConfiguration("autostart")
    entities = [
        DeclareLaunchArgument("params_file", default_value=str(params_file(robot)),
                              description="node parameters, one ros__parameters section per node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
        DeclareLaunchArgument("use_sim_time", default_value="true" if sim else "false",
                              description="follow /clock (the simulated drivers publish it)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the lifecycle nodes"),
    ]
    files = [params]
    if sim:
        entities.append(DeclareLaunchArgument("sim_params_file", default_value=str(params_files(robot, True)[-1]),
                                              description="the simulated drivers' parameters, over params_file"))
        files.append(LaunchConfiguration("sim_params_file"))
    if robot in RVIZ_VIEWS:
        entities += [
            DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with config/<robot>.rviz"),
            Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", str(rviz_config(robot))],
                 parameters=[{"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
                 condition=IfCondition(LaunchConfiguration("rviz")))]
    for spec in graph(robot, sim):
        node_params = list(files)
        if not spec.clock_source:
            node_params.append({"use_sim_time": ParameterValue(use_sim_time, value_type=bool)})
        node = LifecycleNode(package=spec.package, executable=spec.executable, name=spec.name, namespace=namespace,
                             parameters=node_params, remappings=list(spec.remaps.items()), output="screen")
        entities.append(node)
        if spec.lifecycle:
            change = lambda tid, n=node: EmitEvent(event=ChangeState(  # noqa: E731
                lifecycle_node_matcher=matches_action(n), transition_id=tid))
            entities.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, goal_state="inactive",
                entities=[change(Transition.TRANSITION_ACTIVATE)]), condition=IfCondition(autostart)))
            entities.append(EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                        transition_id=Transition.TRANSITION_CONFIGURE),
                                      condition=IfCondition(autostart)))
    return LaunchDescription(entities)
