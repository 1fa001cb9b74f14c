"""f2p_bringup: how the f2p graph is started — one node-parameter YAML per robot, installed as
``share/f2p_bringup/config/`` and found with :func:`params_file`."""
from __future__ import annotations

from pathlib import Path

from f2p_common.resources import share_path

#: The parameter files shipped, by robot.
PARAMS_FILES = {"sim": "f2p_params.yaml"}


def params_file(robot: str = "sim") -> Path:
    """The installed ``node_name: ros__parameters:`` YAML of ``robot``."""
    if robot not in PARAMS_FILES:
        raise ValueError(f"no parameter file for robot {robot!r}; known: {', '.join(PARAMS_FILES)}")
    return share_path("f2p_bringup", "config", PARAMS_FILES[robot])
