"""The world config's task-scene layouts: overlays merged into the file, errors that name the problem."""
import pytest
import yaml

from f2p_sim.config import LAYOUTS, load_world_config, merge_overlay


def test_merge_overlay_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    out = merge_overlay(base, {"a": {"y": [3]}, "c": 4})
    assert out == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}          # the base is left alone


def test_layouts_load_with_their_name_and_without_the_overlays():
    paper, real = load_world_config(), load_world_config(layout="real_scale")
    assert paper["layout"] == "paper" and real["layout"] == "real_scale"
    assert "layouts" not in paper and "layouts" not in real
    assert load_world_config(layout="paper") == paper
    # The overlay changes what it names and nothing else.
    assert real["classes"]["cuboid"]["size_range"] != paper["classes"]["cuboid"]["size_range"]
    assert real["classes"]["cuboid"]["friction"] == paper["classes"]["cuboid"]["friction"]
    assert real["workspace"]["upper"][1] > paper["workspace"]["upper"][1]
    assert real["cameras"]["front"]["eye"] == paper["cameras"]["front"]["eye"]
    assert set(LAYOUTS) == {"paper", "real_scale"}


def test_unknown_or_incomplete_layouts_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown layout 'kitchen'; known: paper, real_scale"):
        load_world_config(layout="kitchen")
    doc = yaml.safe_load(open(load_world_config.__globals__["default_config_path"]()))
    del doc["layouts"]["real_scale"]["furniture"]
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="real_scale layout needs a furniture section"):
        load_world_config(path, layout="real_scale")
    doc["layout"] = "moon"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="layout 'moon' has no scene generator"):
        load_world_config(path)
