"""benchmarks/failure_mode_probe.py: real placements in MuJoCo and Γ's decisions scored per group."""
import pytest

from f2p_sim.observation import Camera
from support.benchmarks import load_benchmark
from support.failure_fixtures import one_torch_thread, tiny_model, world

_one_thread = pytest.fixture(autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def probe():
    return load_benchmark("failure_mode_probe.py")


@pytest.fixture(scope="module")
def organize_cases(probe):
    cfg, backend = world()
    return probe.probe_cases("organize", 5, 1, backend, Camera.from_config(cfg, "front"))


def test_one_placement_per_loaded_cup_with_the_simulators_truth(probe, organize_cases):
    assert [c["target"] for c in organize_cases] == ["cup_0", "cup_1"]       # 5 objects: two loaded cups
    for case in organize_cases:
        lits, truth = case["literals"], case["truth"]
        assert set(lits) == set(probe.GROUPS)
        assert {len(lits["contents_inside_target"]), len(lits["other_contents_inside"])} == {1, 2}   # 3 items in 2 cups
        assert len(lits["other_containers_stay"]) == 1
        assert all(len(truth[g]) == len(lits[g]) for g in probe.GROUPS)
        # the physics of the held-out failure mode: the carried cup keeps its items and lands on
        # table_b; the other cup stays where it was, its items in it
        assert all(truth["contents_inside_target"]) and truth["target_above_table_b"] == [True]
        assert truth["other_containers_stay"] == [False] and all(truth["other_contents_inside"])


def test_score_counts_every_literal_once(probe, organize_cases):
    r = probe.score(tiny_model(), organize_cases, n_points=32)
    assert r["contents_inside_target (1 in target)"]["literals"] == 1
    assert r["contents_inside_target (2 in target)"]["literals"] == 2
    assert r["target_above_table_b"]["literals"] == 2 and r["other_containers_stay"]["literals"] == 2
    for v in r.values():
        assert 0 <= v["correct"] <= v["literals"] and 0.0 <= v["mean_p"] <= 1.0


def test_refuses_a_work_folder_without_a_bench_run(probe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        probe.main(["--work", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "no bench-f2p run" in capsys.readouterr().err
