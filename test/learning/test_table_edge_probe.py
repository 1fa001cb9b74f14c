"""benchmarks/table_edge_probe.py: the far-edge band of table_b, its truth from MuJoCo, and its report."""
import json

import numpy as np
import pytest

from f2p_sim.observation import Camera
from support.benchmarks import load_benchmark
from support.failure_fixtures import one_torch_thread, save_tiny_checkpoint, world

_one_thread = pytest.fixture(autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def edge_probe():
    return load_benchmark("table_edge_probe.py")


def test_the_band_straddles_table_bs_far_edge_in_mujoco(edge_probe):
    import failure_mode_probe as probe
    cfg, backend = world()
    # organize 7: cup_2 stands nearest table_b, the one cup whose reach passes its far edge
    cases = probe.edge_cases("organize", 7, 1, backend, Camera.from_config(cfg, "front"), grid_y=edge_probe.BAND_Y)
    assert cases and all(len(c["params"]) == len(c["truth"]) == len(c["cells"]) > 0 for c in cases)
    k = len(edge_probe.BAND_Y)
    assert all(c["grid_cells"] == len(probe.EDGE_GRID) * k for c in cases)
    far = {c["target"]: dict(zip(c["cells"], c["truth"])) for c in cases}["cup_2"]
    mid = 3 * k                        # x offset 0: y offsets 0.13 .. 0.37 m from table_b's centre
    reach = [v for v in range(k) if mid + v in far]
    assert edge_probe.BAND_Y[reach[-1]] > 0.27                       # reaches past the edge at 0.25 m
    assert far[mid] and not far[mid + reach[-1]]                     # on the table inside it, on the floor past it


def test_writes_json_and_markdown_per_checkpoint(edge_probe, tmp_path):
    ck = save_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "probe"
    assert edge_probe.main(["--task", "organize", "--objects", "3", "--scenes", "1", "--out", str(out),
                            f"tiny={ck}"]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    row = result["results"][0]
    assert row["name"] == "tiny" and row["band"]["off_table"] + row["band"]["on_table"] == row["band"]["placements"] > 0
    assert result["band_y_offsets_m"] == list(np.round(edge_probe.BAND_Y, 2))
    md = out.with_suffix(".md").read_text()
    assert f"| tiny | {row['version']} |" in md and "far y edge at 0.25 m" in md


def test_plans_score_every_model_at_the_planners_first_failure(edge_probe, tmp_path):
    ck = save_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "probe"
    assert edge_probe.main(["--task", "organize", "--objects", "3", "--scenes", "1", "--out", str(out),
                            f"a={ck}", f"b={ck}", "--plans", "a", "--trials", "2", "--workers", "1"]) == 0
    plans = json.loads(out.with_suffix(".json").read_text())["plans"]
    assert plans["checkpoint"] == "a" and sum(plans["outcomes"].values()) == 2
    assert plans["seeds"].startswith("task 70000 + 1000*n + i")        # development seeds, not the bench's
    for f in plans["failures"]:
        assert f["task_seed"] == 73000 + f["trial"]
        if f["skill"] == "pick_place":                                  # the same weights answer alike
            assert f["p_above_table_b"]["a"] == f["p_above_table_b"]["b"] is not None
    assert "First failures of 2 planned trials with `a`" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("bad", [["tiny"], ["=x.pt"], ["tiny=/nonexistent.pt"], ["--plans", "other", "a=x.pt"],
                                 ["--trials", "0", "a=x.pt"]])
def test_bad_checkpoint_arguments_are_usage_errors(edge_probe, bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        edge_probe.parse_args(bad)
    assert e.value.code == 2
