"""f2p_viz: the ``visualizer`` node (robot side).

Owns: rviz markers of objects, relations, the executing step and failures (``drawing`` is
ROS-free).
May import: ``f2p_common``, ``f2p_failure``; ROS only in the node.
"""
