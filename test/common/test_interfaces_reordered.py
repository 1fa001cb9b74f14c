"""A scene and a relation state put in another order of their objects (a backend that segments
each frame afresh lists the same objects in any order)."""
from __future__ import annotations

import numpy as np
import pytest

from f2p_common.interfaces import RelationState, SegmentedObject, SegmentedScene


def test_reordered_scene_and_relations_follow_the_ids():
    objs = [SegmentedObject(i, "cuboid", np.full((3, 3), k, np.float32)) for k, i in enumerate(("a", "b", "c"))]
    scene = SegmentedScene(objs, "base_link", 7, "camera:geometric")
    back = scene.reordered(["c", "a", "b"])
    assert back.object_ids == ["c", "a", "b"] and back.objects[0].points[0, 0] == 2 and back.stamp_ns == 7
    unary = np.zeros((3, 3), np.float32)
    unary[2, 1] = 1.0                                        # c holds relation 1
    binary = np.zeros((3, 3, 9), np.float32)
    binary[0, 2, 4] = 1.0                                    # a -> c, relation 4
    rel = RelationState(["a", "b", "c"], unary, binary, "base_link", 7).reordered(["c", "a", "b"])
    assert rel.unary[0, 1] == 1.0 and rel.binary[1, 0, 4] == 1.0 and rel.binary.sum() == 1.0
    with pytest.raises(ValueError, match="not"):
        scene.reordered(["a", "b"])
    with pytest.raises(ValueError, match="not"):
        RelationState(["a"], np.zeros((1, 3)), np.zeros((1, 1, 9))).reordered(["z"])
