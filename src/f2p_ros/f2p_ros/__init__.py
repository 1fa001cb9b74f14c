"""f2p_ros: the ROS side every f2p node shares (robot side).

Owns: ``conversions`` (the one place where f2p dataclasses, arrays and stage names become ROS
messages and back), ``parameters`` (node parameter tables declared with ranges, validated on
set), ``qos`` (the named QoS profiles), ``nodes`` (``ManagedNode``: the lifecycle state, the
endpoints and worker threads of each lifecycle phase; diagnostics, ``run_node``), ``sync`` and
``bag`` (rosbag2 MCAP writing and reading).
May import: rclpy and ROS messages, ``f2p_interfaces``, ``f2p_common``, ``f2p_failure``.
"""
