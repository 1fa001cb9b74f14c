"""The one relation and skill vocabulary: names, order and parameter boxes."""
import math

import pytest

from f2p_common import vocabulary as v


def test_relation_vocabulary_matches_paper_a9():
    assert v.UNARY_RELATIONS == ("movable", "is_drawer", "drawer_open")
    assert set(v.BINARY_RELATIONS) == {"left", "right", "front", "behind", "above", "below",
                                       "in_contact", "boundary", "inside"}
    assert len(set(v.RELATIONS)) == len(v.RELATIONS) == 12
    assert v.is_unary("movable") and not v.is_unary("inside")
    with pytest.raises(ValueError, match="unknown relation predicate 'on_top'"):
        v.is_unary("on_top")


def test_skill_library_matches_paper_a10():
    assert list(v.SKILLS) == ["pick_place", "push", "open_drawer", "close_drawer"]
    for spec in v.SKILLS.values():
        assert len(spec.low) == len(spec.high) == spec.dim
        assert all(lo <= hi for lo, hi in zip(spec.low, spec.high))
    with pytest.raises(ValueError, match="unknown skill 'throw'"):
        v.skill("throw")


@pytest.mark.parametrize("params, pattern", [
    ([0.1, 0.2], "takes 3 parameters"),
    ([0.1, math.nan, 0.0], "dy is not finite"),
    ([0.1, 0.0, 2.0], r"dz=2 is outside its box \[-0.2, 0.6\]"),
])
def test_skill_parameters_are_checked(params, pattern):
    with pytest.raises(ValueError, match=pattern):
        v.skill("pick_place").check(params)


def test_valid_parameters_pass():
    v.skill("push").check([math.pi / 2, 0.2])


def test_object_classes_and_their_groups():
    assert v.OBJECT_CLASSES == ("table", "shelf", "cabinet", "drawer", "bin", "bag", "cup", "cuboid")
    for group in (v.MOVABLE_CLASSES, v.DRAWER_CLASSES, v.CONTAINER_CLASSES):
        assert group <= set(v.OBJECT_CLASSES)
    assert "table" not in v.MOVABLE_CLASSES
    assert v.check_object_class("cup") == "cup"
    with pytest.raises(ValueError, match="unknown object class 'teapot'"):
        v.check_object_class("teapot")


def test_skill_index_target_requirement_and_task_libraries():
    assert [v.skill_index(n) for n in v.SKILLS] == [0, 1, 2, 3] == [s.index for s in v.SKILLS.values()]
    with pytest.raises(ValueError, match="unknown skill 'throw'"):
        v.skill_index("throw")
    assert {n: s.target_requirement for n, s in v.SKILLS.items()} == {
        "pick_place": "movable", "push": "movable", "open_drawer": "is_drawer", "close_drawer": "is_drawer"}
    assert all(s.target_requirement in v.UNARY_RELATIONS for s in v.SKILLS.values())
    assert v.TASK_SKILLS == {"transport": ("pick_place",), "organize": ("pick_place",), "packing": ("push", "pick_place")}
    assert all(name in v.SKILLS for lib in v.TASK_SKILLS.values() for name in lib)


def test_the_one_box_normalisation_round_trips_and_stays_in_the_box():
    import numpy as np
    import torch
    spec = v.skill("push")
    lo, hi = np.asarray(spec.low), np.asarray(spec.high)
    assert np.allclose(spec.to_unit(lo), -1) and np.allclose(spec.to_unit(hi), 1)
    a = np.array([0.3, 0.1])
    assert np.allclose(spec.from_unit(spec.to_unit(a)), a, atol=1e-12)
    assert np.array_equal(spec.from_unit([5.0, -5.0]), [hi[0], lo[1]])          # clipped, never outside
    # the same mapping on torch tensors (the model's skill encoding)
    t = v.normalise(torch.tensor([0.3, 0.1]), torch.tensor(spec.low), torch.tensor(spec.high))
    assert np.allclose(t.numpy(), spec.to_unit(a), atol=1e-6)
    assert np.allclose(v.denormalise(t, torch.tensor(spec.low), torch.tensor(spec.high)).numpy(), a, atol=1e-6)


def test_padded_parameter_boxes():
    assert v.PARAM_DIM == 3
    assert v.padded_parameter_box("push") == ([-math.pi, 0.0, 0.0], [math.pi, 0.4, 0.0])
    assert v.padded_parameter_box("open_drawer", pad_high=1.0) == ([0.0, 0.0, 0.0], [0.3, 1.0, 1.0])


def test_skill_displacement_reads_where_a_skill_sends_its_target():
    import math

    from f2p_common.vocabulary import skill_displacement
    assert skill_displacement("pick_place", (0.1, -0.4, 0.2)) == (0.1, -0.4, 0.0)        # it comes to rest: no dz
    dx, dy, dz = skill_displacement("push", (math.pi / 2, 0.2))
    assert (dx, dy, dz) == pytest.approx((0.0, 0.2, 0.0), abs=1e-12)
    assert skill_displacement("open_drawer", (0.1,)) is None
    with pytest.raises(ValueError, match="outside its box"):
        skill_displacement("pick_place", (2.0, 0.0, 0.0))


def test_an_oriented_boxs_axis_aligned_bounds():
    import math

    import numpy as np

    from f2p_common.interfaces import OrientedBox
    turned = OrientedBox(np.array([1.0, 2.0, 0.5]), np.array([0.0, 0.0, math.sin(math.pi / 8), math.cos(math.pi / 8)]),
                         np.array([0.2, 0.0, 0.1]))                        # a 20 cm edge turned 45° about z
    lower, upper = turned.bounds()
    half = 0.1 / math.sqrt(2)
    assert np.allclose(lower, [1 - half, 2 - half, 0.45]) and np.allclose(upper, [1 + half, 2 + half, 0.55])
