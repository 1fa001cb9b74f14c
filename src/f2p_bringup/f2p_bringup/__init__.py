"""f2p_bringup: how the f2p graph is started — one description of the graph per robot
(``graph``), each robot's node-parameter YAML (``config/<robot>.yaml``, :func:`params_file`) and
rviz2 view (``config/<robot>.rviz``, :func:`rviz_config`), launch
files for robots with ``launch_ros`` (``launch/``) and a runner for machines without it
(``f2p-bringup``, :mod:`f2p_bringup.runner`)."""
from f2p_bringup.graph import GRAPHS, PARAMS_FILES, graph, params_file, rviz_config  # noqa: F401
