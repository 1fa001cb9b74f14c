"""Typed, documented, validated ROS parameters declared from one table per node.

In the spirit of generate_parameter_library (which is not on PyPI): each node lists its
parameters once as `Param` rows (name, default, description, optional check; the table and its
validation are ROS-free, in ``f2p_common.parameters``); `declare` declares them with
descriptors (so `ros2 param describe` shows the docs) and `load` reads and validates them,
raising `ParameterError` with every problem at once.
"""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor

from f2p_common.parameters import (Param, ParameterError, at_least, one_of, positive, positive_or_zero,  # noqa: F401
                                   validate, vector3)


def declare(node, params: list[Param]) -> None:
    """Declare every parameter (type taken from its default) with its description."""
    for p in params:
        if not node.has_parameter(p.name):
            node.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description))


def load(node, params: list[Param]) -> dict[str, Any]:
    """Read and validate every parameter; ParameterError lists all failures."""
    return validate(params, {p.name: node.get_parameter(p.name).value for p in params}, node.get_name())
