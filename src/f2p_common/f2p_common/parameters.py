"""A node's parameters as one table, without ROS: names, defaults, descriptions, ranges, checks.

Each node lists its parameters once as :class:`Param` rows; :func:`validate` reads values (a
node's, or a params file's ``ros__parameters`` read without a node) against the table and
raises :class:`ParameterError` naming every problem at once. ``f2p_ros.parameters`` declares
the same table on a ROS node (ranges into the descriptors ``ros2 param describe`` shows, every
``ros2 param set`` validated); ROS-free code (a learner's job settings, offline tools) maps the
validated values onto its config dataclasses, so a setting is named in one place.

A parameter is read at ``configure`` unless it is marked ``live``: then the node reads it at
each use, and ``ros2 param set`` changes it while the node runs. Setting any other parameter of
a configured node is refused with the reason (it would silently do nothing until the next
configure).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class ParameterError(ValueError):
    """One or more parameters have invalid values; the message lists them."""


@dataclass(frozen=True)
class Range:
    """A numeric check with its bounds (shown as the parameter descriptor's range): a finite
    number with ``low <= v <= high``, or ``low < v`` when ``low_open``."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False

    def __call__(self, v) -> Optional[str]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "must be a number"
        if not math.isfinite(v):
            return "must be finite"
        if (v > self.low if self.low_open else v >= self.low) and v <= self.high:
            return None
        if math.isinf(self.high):
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        return f"must be in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class OneOf:
    """A value among ``choices`` (listed in the parameter's description)."""

    choices: tuple

    def __call__(self, v) -> Optional[str]:
        return None if v in self.choices else f"must be one of {list(self.choices)}"


@dataclass(frozen=True)
class Param:
    """One parameter: ``name``, ``default`` (its type is the parameter's), ``description``,
    ``check`` (returns an error string for a bad value, None when fine; a :class:`Range` also
    gives the descriptor's range), ``live`` (read at each use: may change while the node runs)."""

    name: str
    default: Any
    description: str
    check: Optional[Callable[[Any], Optional[str]]] = field(default=None, compare=False)
    live: bool = False


def check(p: Param, value) -> Optional[str]:
    """Why ``value`` is not a valid value of ``p`` (None: it is)."""
    if p.check is None:
        return None
    try:
        return p.check(value)
    except (TypeError, ValueError) as exc:
        return str(exc) or f"not a valid value ({type(exc).__name__})"


def validate(params: list[Param], values: dict[str, Any], node_name: str) -> dict[str, Any]:
    """Every parameter of ``params``: its value in ``values`` or its default, checked;
    ParameterError lists every unknown key and bad value."""
    known = {p.name for p in params}
    errors = [f"{k}: not a parameter of {node_name}" for k in values if k not in known]
    out = {}
    for p in params:
        value = values.get(p.name, p.default)
        problem = check(p, value)
        if problem:
            errors.append(f"{p.name}={value!r}: {problem}")
        out[p.name] = value
    if errors:
        raise ParameterError(f"invalid parameters for node {node_name!r}: " + "; ".join(errors))
    return out


# Common checks.
positive_or_zero = Range(0)
positive = Range(0, low_open=True)
probability = Range(0.0, 1.0)


def at_least(low) -> Range:
    return Range(low)


def in_range(low, high) -> Range:
    return Range(low, high)


finite = Range()


def vector3(v) -> Optional[str]:
    return None if len(v) == 3 else f"must have 3 elements (x, y, z), has {len(v)}"


def one_of(*choices) -> OneOf:
    return OneOf(tuple(choices))
