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
