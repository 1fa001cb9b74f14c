"""f2p_bringup: how the f2p graph is started (robot side).

Owns: one description of the graph per robot (``graph``), each robot's node-parameter YAML
(``config/<robot>.yaml``, :func:`params_file`) and rviz2 view (:func:`rviz_config`), launch
files for robots with ``launch_ros`` and a runner for machines without it (``f2p-bringup``), the
``bag_recorder`` node.
May import: ``f2p_common``, ``f2p_ros``; never an off-board package.
"""
from f2p_bringup.graph import GRAPHS, PARAMS_FILES, graph, params_file, rviz_config  # noqa: F401
