"""One backend registry pattern: perception's segmenters, the relation detectors and Guardian's
verifiers are each a ``f2p_common.backends.Registry`` whose every entry resolves, and whose names
are the node's ``backend`` choices."""
from __future__ import annotations

import pytest

from f2p_common.backends import Registry


def test_unknown_backend_is_named_with_the_known_ones():
    reg = Registry("widget", {"json": "json:loads", "dumps": "json:dumps"})
    assert reg.names() == ("json", "dumps") and "json" in reg and list(reg) == ["json", "dumps"]
    assert reg.make("json", s="[1]") == [1]                       # built with its own options
    with pytest.raises(ValueError, match="unknown widget 'yaml'; known: json, dumps"):
        reg.make("yaml")


@pytest.mark.parametrize("registry, node, table", [
    ("f2p_perception.segmentation:SEGMENTERS", "f2p_perception.perception_node", "PARAMS"),
    ("f2p_relations.detectors:DETECTORS", "f2p_relations.relation_detector_node", "PARAMS"),
    ("f2p_guardian.verifier:VERIFIERS", "f2p_guardian.guardian_node", "PARAMS")])
def test_every_registered_backend_resolves_and_is_a_choice_of_its_node(registry, node, table):
    import importlib
    module, name = registry.split(":")
    reg = getattr(importlib.import_module(module), name)
    for backend in reg:
        assert callable(reg.factory(backend)), backend
    (param,) = [p for p in getattr(importlib.import_module(node), table) if p.name == "backend"]
    assert tuple(param.check.choices) == reg.names()
