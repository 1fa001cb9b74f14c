"""A node's parameters as one table, without ROS: names, defaults, descriptions and checks.

Each node lists its parameters once as :class:`Param` rows; :func:`validate` reads values (a
node's, or a params file's ``ros__parameters`` read without a node) against the table and
raises :class:`ParameterError` naming every problem at once. ``f2p_ros.parameters`` declares
the same table on a ROS node; ROS-free code (a learner's job settings, offline tools) maps the
validated values onto its config dataclasses, so a setting is named in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class ParameterError(ValueError):
    """One or more parameters have invalid values; the message lists them."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    # Returns an error string for a bad value, or None when the value is fine.
    check: Optional[Callable[[Any], Optional[str]]] = field(default=None, compare=False)


def validate(params: list[Param], values: dict[str, Any], node_name: str) -> dict[str, Any]:
    """Every parameter of ``params``: its value in ``values`` or its default, checked;
    ParameterError lists every unknown key and bad value."""
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


def positive(v) -> Optional[str]:
    return None if v > 0 else "must be > 0"


def at_least(low) -> Callable[[Any], Optional[str]]:
    return lambda v: None if v >= low else f"must be >= {low}"


def vector3(v) -> Optional[str]:
    return None if len(v) == 3 else f"must have 3 elements (x, y, z), has {len(v)}"


def one_of(*choices) -> Callable[[Any], Optional[str]]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"
