"""Each relation of paper 000 A.9 on hand-built boxes and scenes (f2p_relations.relations)."""
import numpy as np
import pytest

from conftest import TABLE_TOP, bin_with_items, cube, table
from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS
from f2p_relations.relations import (EPS_BOTTOM, EPS_BOUNDARY, Boxes, boxes_from_clouds, compute_relations,
                                     drawer_openings_from_boxes)
from f2p_sim.observation import Camera, observe
from f2p_sim.scene import ObjectSpec, SceneSpec


def boxes(*cs):
    """Boxes from (center, size) pairs."""
    return Boxes.from_center_size_yaw([c for c, _ in cs], [s for _, s in cs])


def test_layout_follows_the_vocabulary():
    r = compute_relations(boxes(((0, 0, 0), (1, 1, 1)), ((0, 3, 0), (1, 1, 1))), ["cuboid", "table"])
    assert r.unary.shape == (2, len(UNARY_RELATIONS)) and r.binary.shape == (2, 2, len(BINARY_RELATIONS))
    assert r.flat().shape == (2 * 3 + 4 * 9,)
    assert not r.binary[[0, 1], [0, 1]].any()  # nothing relates to itself


def test_unary_movable_and_drawer():
    r = compute_relations(boxes(*[((i, 0, 0), (0.1, 0.1, 0.1)) for i in range(4)]),
                          ["table", "cuboid", "cup", "drawer"], drawer_openings={3: 0.1})
    assert [r.holds("movable", i) for i in range(4)] == [False, True, True, False]
    assert [r.holds("is_drawer", i) for i in range(4)] == [False, False, False, True]
    assert r.holds("drawer_open", 3)
    r = compute_relations(boxes(*[((i, 0, 0), (0.1, 0.1, 0.1)) for i in range(4)]),
                          ["table", "cuboid", "cup", "drawer"], drawer_openings={3: 0.01})
    assert not r.holds("drawer_open", 3)


def test_drawer_open_from_boxes_uses_protrusion_from_the_cabinet():
    cab = ((0.6, 0, 0.2), (0.4, 0.4, 0.4))
    closed = ((0.41, 0, 0.2), (0.02, 0.36, 0.3))      # front panel flush with the cabinet front
    opened = ((0.37, 0, 0.2), (0.14, 0.36, 0.3))      # pulled out 0.1 m
    for drawer, expect in ((closed, False), (opened, True)):
        b = boxes(cab, drawer)
        assert drawer_openings_from_boxes(b, ["cabinet", "drawer"])[1] == pytest.approx(0.1 if expect else 0.0, abs=1e-9)
        assert compute_relations(b, ["cabinet", "drawer"]).holds("drawer_open", 1) == expect


def test_spatial_relations_use_the_robot_view_frame():
    # b is +y (left) and +x (behind) of a; c is on top of a.
    b = boxes(((0.5, 0.0, 0.5), (0.1, 0.1, 0.1)), ((0.7, 0.2, 0.5), (0.1, 0.1, 0.1)), ((0.5, 0.0, 0.6), (0.1, 0.1, 0.1)))
    r = compute_relations(b, ["cuboid"] * 3)
    assert r.holds("left", 1, 0) and r.holds("right", 0, 1)
    assert r.holds("behind", 1, 0) and r.holds("front", 0, 1)
    assert not r.holds("left", 0, 1) and not r.holds("front", 1, 0)
    assert r.holds("above", 2, 0) and r.holds("below", 0, 2)
    assert not r.holds("above", 1, 0)  # footprints do not overlap
    assert not r.holds("left", 2, 0) and not r.holds("right", 2, 0)  # stacked: neither side


def test_touching_boxes_are_beside_each_other_and_in_contact():
    b = boxes(((0.5, 0.0, 0.5), (0.1, 0.1, 0.1)), ((0.5, 0.1, 0.5), (0.1, 0.1, 0.1)), ((0.5, 0.3, 0.5), (0.1, 0.1, 0.1)))
    r = compute_relations(b, ["cuboid"] * 3)
    assert r.holds("left", 1, 0) and r.holds("in_contact", 0, 1) and r.holds("in_contact", 1, 0)
    assert not r.holds("in_contact", 1, 2)
    # Given simulator contacts, in_contact comes from them alone.
    r = compute_relations(b, ["cuboid"] * 3, contacts=[(1, 2)])
    assert r.holds("in_contact", 2, 1) and not r.holds("in_contact", 0, 1)


def test_boundary_uses_the_paper_thresholds():
    assert (EPS_BOUNDARY, EPS_BOTTOM) == (0.1, 0.2)
    surface = ((0.5, 0.0, 0.2), (0.6, 0.8, 0.4))      # x 0.2..0.8, y -0.4..0.4, top 0.4
    near_edge = ((0.5, 0.32, 0.425), (0.05, 0.05, 0.05))   # 0.055 m from the +y edge
    center = ((0.5, 0.0, 0.425), (0.05, 0.05, 0.05))
    small = ((0.5, 0.32, 0.6), (0.15, 0.15, 0.1))        # a 0.15 m box is not a surface
    r = compute_relations(boxes(surface, near_edge, center), ["table", "cuboid", "cuboid"])
    assert r.holds("boundary", 1, 0) and not r.holds("boundary", 2, 0)
    r = compute_relations(boxes(small, ((0.5, 0.32, 0.675), (0.05, 0.05, 0.05))), ["cuboid", "cuboid"])
    assert r.holds("above", 1, 0) and not r.holds("boundary", 1, 0)


def test_inside_is_box_containment():
    cup = ((0.5, 0.0, 0.5), (0.1, 0.1, 0.1))
    item = ((0.5, 0.0, 0.48), (0.04, 0.04, 0.06))
    sticking_out = ((0.5, 0.0, 0.55), (0.04, 0.04, 0.12))
    r = compute_relations(boxes(cup, item, sticking_out), ["cup", "cuboid", "cuboid"])
    assert r.holds("inside", 1, 0) and not r.holds("inside", 0, 1) and not r.holds("inside", 2, 0)
    same = compute_relations(boxes(cup, cup), ["cup", "cup"])
    assert not same.holds("inside", 0, 1)


def test_bad_boxes_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        Boxes([[0, 0, float("nan")]], [[1, 1, 1]])
    with pytest.raises(ValueError, match="classes"):
        compute_relations(boxes(((0, 0, 0), (1, 1, 1))), ["cuboid", "cup"])
    with pytest.raises(ValueError, match="unknown object classes"):
        compute_relations(boxes(((0, 0, 0), (1, 1, 1))), ["teapot"])
    with pytest.raises(ValueError, match="no points"):
        boxes_from_clouds([np.zeros((0, 3))])


def test_yawed_box_aabb():
    b = Boxes.from_center_size_yaw([[0, 0, 0]], [[0.2, 0.1, 0.1]], [np.pi / 2])
    assert np.allclose(b.size, [[0.1, 0.2, 0.1]])


def test_relations_from_simulator_state(backend):
    backend.load(bin_with_items())
    names = [s.name for s in backend.segments]
    t, bn, a, b, c = (names.index(n) for n in ("table", "bin", "a", "b", "c"))
    r = backend.relations()
    assert r.holds("inside", a, bn) and r.holds("inside", b, bn) and not r.holds("inside", c, bn)
    assert r.holds("in_contact", a, bn) and r.holds("in_contact", bn, t) and not r.holds("in_contact", a, b)
    assert r.holds("above", bn, t) and r.holds("above", c, t) and r.holds("below", t, c)
    assert r.holds("left", b, a) and r.holds("right", c, bn) and r.holds("behind", c, a)
    assert r.holds("movable", bn) and not r.holds("movable", t)


def test_cloud_relations_match_state_relations_except_in_contact(backend, cfg):
    """The geometric detector's boxes (from clouds) reproduce the simulator's relations.

    in_contact differs by definition: the simulator reports touching geoms; boxes report gaps
    under BOX_CONTACT_GAP (items in a 1 cm-floored bin are within 1 cm of the table's box)."""
    scene = SceneSpec([table(), ObjectSpec("bin", "bin", (0.26, 0.3, 0.09), (0.5, 0.12, TABLE_TOP + 0.045)),
                       cube("a", 0.5, 0.06, z_bottom=TABLE_TOP + 0.01), cube("c", 0.62, -0.2), cube("d", 0.4, -0.15)])
    backend.load(scene)
    truth = backend.relations()
    k = BINARY_RELATIONS.index("in_contact")
    for cam in ("front", "left_high", "right_low"):
        obs = observe(backend, Camera.from_config(cfg, cam))
        assert (obs.counts > 0).all()
        est = compute_relations(boxes_from_clouds([obs.segment_cloud(i) for i in range(len(obs.counts))]),
                                [s.cls for s in backend.segments])
        assert np.array_equal(est.unary, truth.unary)
        mask = np.ones(len(BINARY_RELATIONS), bool)
        mask[k] = False
        assert np.array_equal(est.binary[..., mask], truth.binary[..., mask]), cam
