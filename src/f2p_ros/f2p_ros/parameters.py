"""Typed, documented, validated ROS parameters declared from one table per node.

In the spirit of generate_parameter_library (which is not on PyPI): each node lists its
parameters once as `Param` rows (name, default, description, optional check); `declare`
declares them with descriptors (so `ros2 param describe` shows the docs) and `load`
reads and validates them, raising `ParameterError` with every problem at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from rcl_interfaces.msg import ParameterDescriptor


class ParameterError(ValueError):
    """One or more parameters have invalid values; the message lists them."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    # Returns an error string for a bad value, or None when the value is fine.
    check: Optional[Callable[[Any], Optional[str]]] = field(default=None, compare=False)


def declare(node, params: list[Param]) -> None:
    """Declare every parameter (type taken from its default) with its description."""
    for p in params:
        if not node.has_parameter(p.name):
            node.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description))


def load(node, params: list[Param]) -> dict[str, Any]:
    """Read and validate every parameter; ParameterError lists all failures."""
    return validate(params, {p.name: node.get_parameter(p.name).value for p in params}, node.get_name())


def validate(params: list[Param], values: dict[str, Any], node_name: str) -> dict[str, Any]:
    """Every parameter of ``params``: its value in ``values`` (e.g. a params file's
    ``ros__parameters`` read without a node) or its default, checked; ParameterError lists
    every unknown key and bad value."""
    known = {p.name for p in params}
    errors = [f"{k}: not a parameter of {node_name}" for k in values if k not in known]
    out = {}
    for p in params:
        value = values.get(p.name, p.default)
        problem = p.check(value) if p.check else None
        if problem:
            errors.append(f"{p.name}={value!r}: {problem}")
        out[p.name] = value
    if errors:
        raise ParameterError(f"invalid parameters for node {node_name!r}: " + "; ".join(errors))
    return out


# Common checks.
def positive_or_zero(v) -> Optional[str]:
    return None if v >= 0 else "must be >= 0"


def vector3(v) -> Optional[str]:
    return None if len(v) == 3 else f"must have 3 elements (x, y, z), has {len(v)}"


def one_of(*choices) -> Callable[[Any], Optional[str]]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"
