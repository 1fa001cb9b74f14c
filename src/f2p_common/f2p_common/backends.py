"""The one way an f2p node's ``backend`` parameter picks an implementation.

A :class:`Registry` maps backend names to ``"module:attribute"`` strings (a class or a factory
function) imported only when that backend is built, so a node that runs the light default
never imports the heavy libraries of the others (ultralytics, segment-anything, transformers,
torch). The perception node's segmenters, the relation detector's detectors and Guardian's
verifiers are each one registry; the node's parameter table takes its choices from
:meth:`Registry.names` and builds the configured one with :meth:`Registry.make`.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Registry:
    """Named backends of one kind (``kind``: e.g. "segmentation backend", used in errors)."""

    kind: str
    entries: Mapping[str, str]

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries)

    def factory(self, name: str):
        """The class or function that builds backend ``name`` (imported now); ValueError naming
        the known backends when there is no such one."""
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.entries)}")
        module, attribute = self.entries[name].split(":")
        target = importlib.import_module(module)
        for part in attribute.split("."):
            target = getattr(target, part)
        return target

    def make(self, name: str, **options):
        """Backend ``name`` built with ``options`` (its own keyword arguments)."""
        return self.factory(name)(**options)
