"""Fill any generated ROS message with distinct, non-default values, by introspection.

Walks rosidl SLOT_TYPES so every field of every nested type carries data (a round trip
that only compares default values proves nothing). Floats are multiples of 0.25 so they
survive float32 exactly.
"""
from __future__ import annotations

import importlib
import itertools

from rosidl_parser import definition as d

_counter = itertools.count(1)

_INTS = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "octet", "char"}


def _basic(typename: str):
    k = next(_counter)
    if typename in ("float", "double"):
        return 0.25 * (k % 400) + 0.25
    if typename == "boolean":
        return True
    if typename in _INTS:
        return k % 100 + 1
    raise TypeError(f"unhandled basic type {typename}")


def message_class(t: d.NamespacedType):
    return getattr(importlib.import_module(".".join(t.namespaces)), t.name)


def _value(t, name: str):
    if isinstance(t, d.BasicType):
        v = _basic(t.typename)
        return bytes([v]) if t.typename == "octet" else v
    if isinstance(t, (d.UnboundedString, d.BoundedString, d.UnboundedWString, d.BoundedWString)):
        return f"{name}_{next(_counter)}"
    if isinstance(t, d.NamespacedType):
        return fill(message_class(t)())
    if isinstance(t, d.AbstractNestedType):
        size = t.size if isinstance(t, d.Array) else 2
        values = [_value(t.value_type, name) for _ in range(size)]
        if isinstance(t.value_type, d.BasicType) and t.value_type.typename == "octet":
            return [bytes(v) for v in values]
        return values
    raise TypeError(f"unhandled slot type {t!r} for field {name}")


def fill(msg):
    """Set every field of `msg` (recursively) to a non-default value; returns msg."""
    for name, slot in zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES):
        setattr(msg, name, _value(slot, name))
    return msg
