"""Typed, documented, validated ROS parameters declared from one table per node.

In the spirit of generate_parameter_library (which is not on PyPI): each node lists its
parameters once as ``Param`` rows (name, default, description, check, live; the table and its
validation are ROS-free, in ``f2p_common.parameters``). :func:`declare` declares them with
descriptors — the description, whether a change applies live or at the next configure, and a
:class:`~f2p_common.parameters.Range` check's bounds as the integer / floating-point range — so
``ros2 param describe`` shows them; and it validates every ``ros2 param set``: a bad value is
refused with the reason, and so is a change to a parameter read at configure while the node is
configured (it would do nothing until then); a ``live`` parameter is applied at once (the
node's ``v`` holds the new value). :func:`load` reads and validates them all at configure,
raising ``ParameterError`` with every problem at once. A value given at start (a params file,
``-p``) outside a range does not stop the process: the parameter is declared without its range
and configure refuses it, naming every bad value, as for any other check.
"""
from __future__ import annotations

import math
import sys
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException

from f2p_common.parameters import (OneOf, Param, ParameterError, Range, at_least, check, finite,  # noqa: F401
                                   in_range, one_of, positive, positive_or_zero, probability, validate, vector3)

_INT_LIMIT = 2 ** 62


def descriptor(p: Param) -> ParameterDescriptor:
    """The descriptor of ``p``: its description (saying when a change applies) and, for a
    numeric :class:`Range`, its bounds."""
    choices = f"; one of {list(p.check.choices)}" if isinstance(p.check, OneOf) else ""
    d = ParameterDescriptor(description=p.description + choices + (" [live: a change applies at once]" if p.live
                                                                   else " [read at configure]"))
    if isinstance(p.check, Range) and isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
        r = p.check
        if isinstance(p.default, int):
            low = -_INT_LIMIT if math.isinf(r.low) else int(math.floor(r.low)) + (1 if r.low_open else 0)
            high = _INT_LIMIT if math.isinf(r.high) else int(math.floor(r.high))
            d.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        else:
            big = sys.float_info.max
            d.floating_point_range = [FloatingPointRange(from_value=max(-big, float(r.low)),
                                                         to_value=min(big, float(r.high)), step=0.0)]
    return d


def declare(node, params: list[Param]) -> None:
    """Declare every parameter with its descriptor, and validate every later change (module docstring)."""
    for p in params:
        if node.has_parameter(p.name):
            continue
        try:
            node.declare_parameter(p.name, p.default, descriptor(p))
        except InvalidParameterValueException:      # an override outside the range: configure refuses it
            node.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description))
    table = {p.name: p for p in params}
    node.add_on_set_parameters_callback(lambda changes: _on_set(node, table, changes))


def _configured(node) -> bool:
    machine = getattr(node, "_state_machine", None)          # a lifecycle node: only unconfigured is free
    return machine is None or machine.current_state[1] != "unconfigured"


def _on_set(node, table: dict[str, Param], changes) -> SetParametersResult:
    live = {}
    for change in changes:
        p = table.get(change.name)
        if p is None:                                        # not this table's (use_sim_time, ...)
            continue
        problem = check(p, change.value)
        if problem:
            return SetParametersResult(successful=False, reason=f"{change.name}={change.value!r}: {problem}")
        if _configured(node) and not p.live:
            return SetParametersResult(successful=False, reason=(
                f"{change.name} is read at configure: deactivate and clean up the node, set it, configure again"))
        live[change.name] = change.value
    values = getattr(node, "v", None)
    if isinstance(values, dict):
        values.update(live)
    return SetParametersResult(successful=True)


def load(node, params: list[Param]) -> dict[str, Any]:
    """Read and validate every parameter; ParameterError lists all failures."""
    return validate(params, {p.name: node.get_parameter(p.name).value for p in params}, node.get_name())
