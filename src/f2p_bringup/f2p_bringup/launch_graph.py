"""The launch description of a robot's graph (``launch/<robot>.launch.py``), built from
:func:`f2p_bringup.graph.graph` like the runner. Needs ``launch`` and ``launch_ros`` (a robot's
ROS 2 install; they are not on PyPI), imported only when a description is built.

Arguments, as navigation2's bringup takes them: ``params_file`` (default: the robot's installed
``config/<robot>.yaml``), ``namespace``, ``use_sim_time``, ``autostart`` (configure, then
activate, every lifecycle node each time its process starts), ``use_respawn`` (start a
non-critical node that exited again after :data:`f2p_bringup.graph.RESPAWN_DELAY_S`; with
autostart it is configured and activated again, the others keep running: the runner's
``--respawn``, whose back-off and bound launch lacks; a critical node's exit ends the launch),
``diagnostics`` (start diagnostic_aggregator with ``config/diagnostics.yaml``: /diagnostics_agg)
and ``rviz`` (start rviz2 with ``config/<robot>.rviz`` in the graph's namespace). ``sim``: the robot's simulated vendor drivers first
(``launch/<robot>_sim.launch.py``), and ``sim_params_file`` (default: the installed
``config/<robot>_sim.yaml``) over ``params_file``.
"""
from __future__ import annotations

from f2p_bringup.graph import (RESPAWN_DELAY_S, RVIZ_VIEWS, diagnostics_config, graph, params_file, params_files,
                               rviz_config)


def robot_launch_description(robot: str, sim: bool = False):
    """The LaunchDescription of ``robot``'s graph (after its simulated drivers when ``sim``)."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
    from launch.conditions import IfCondition
    from launch.event_handlers import OnProcessExit, OnProcessStart
    from launch.events import Shutdown, matches_action
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from launch_ros.parameter_descriptions import ParameterValue
    from lifecycle_msgs.msg import Transition

    params, namespace = LaunchConfiguration("params_file"), LaunchConfiguration("namespace")
    use_sim_time, autostart = LaunchConfiguration("use_sim_time"), LaunchConfiguration("autostart")
    use_respawn = LaunchConfiguration("use_respawn")
    entities = [
        DeclareLaunchArgument("params_file", default_value=str(params_file(robot)),
                              description="node parameters, one ros__parameters section per node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
        DeclareLaunchArgument("use_sim_time", default_value="true" if sim else "false",
                              description="follow /clock (the simulated drivers publish it)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the lifecycle nodes"),
        DeclareLaunchArgument("use_respawn", default_value="false",
                              description="start a node that exited again (configured and activated with autostart)"),
        DeclareLaunchArgument("diagnostics", default_value="false",
                              description="start diagnostic_aggregator with config/diagnostics.yaml (/diagnostics_agg)"),
        Node(package="diagnostic_aggregator", executable="aggregator_node", name="analyzers", namespace=namespace,
             parameters=[str(diagnostics_config())], condition=IfCondition(LaunchConfiguration("diagnostics"))),
    ]
    files = [params]
    if sim:
        entities.append(DeclareLaunchArgument("sim_params_file", default_value=str(params_files(robot, True)[-1]),
                                              description="the simulated drivers' parameters, over params_file"))
        files.append(LaunchConfiguration("sim_params_file"))
    if robot in RVIZ_VIEWS:
        entities += [
            DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with config/<robot>.rviz"),
            Node(package="rviz2", executable="rviz2", name="rviz2", namespace=namespace,
                 arguments=["-d", str(rviz_config(robot))],
                 parameters=[{"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
                 condition=IfCondition(LaunchConfiguration("rviz")))]
    for spec in graph(robot, sim):
        node_params = list(files)
        node_params.append({"stamp_with_sim_time" if spec.clock_source else "use_sim_time":
                            ParameterValue(use_sim_time, value_type=bool)})
        node = LifecycleNode(package=spec.package, executable=spec.executable, name=spec.name, namespace=namespace,
                             parameters=node_params, remappings=list(spec.remaps.items()), output="screen",
                             respawn=False if spec.critical else use_respawn, respawn_delay=RESPAWN_DELAY_S)
        entities.append(node)
        if spec.critical:                          # its death ends the graph, as the runner's does
            entities.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=[EmitEvent(
                event=Shutdown(reason=f"critical node {spec.name} exited"))])))
        if spec.lifecycle:
            change = lambda tid, n=node: EmitEvent(event=ChangeState(  # noqa: E731
                lifecycle_node_matcher=matches_action(n), transition_id=tid))
            entities.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, goal_state="inactive",
                entities=[change(Transition.TRANSITION_ACTIVATE)]), condition=IfCondition(autostart)))
            # on every start of its process, a respawn's too (launch emits ProcessStarted each time)
            entities.append(RegisterEventHandler(OnProcessStart(
                target_action=node, on_start=[change(Transition.TRANSITION_CONFIGURE)]), condition=IfCondition(autostart)))
    return LaunchDescription(entities)
