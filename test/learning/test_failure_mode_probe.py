"""benchmarks/failure_mode_probe.py: real placements in MuJoCo and Γ's decisions scored per group."""
import json

import pytest

from f2p_sim.observation import Camera
from support.benchmarks import load_benchmark
from support.failure_fixtures import save_tiny_checkpoint, tiny_model, world



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


def test_original_is_the_parent_the_bench_run_recorded_and_a_mismatch_is_refused(probe, tmp_path, capsys):
    from support.failure_fixtures import TINY_VERSION
    ck = save_tiny_checkpoint(tmp_path / "parent.pt")
    run = lambda **kw: (tmp_path / "progress.json").write_text(json.dumps({"settings": {"parent": "other"}, "cells": {}, **kw}))
    run()    # a run from before bench-f2p recorded its parent's path
    with pytest.raises(SystemExit):
        probe.main(["--work", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "records no parent path" in capsys.readouterr().err
    run(parent_path=str(ck))
    with pytest.raises(SystemExit):
        probe.main(["--work", str(tmp_path), "--out", str(tmp_path / "out")])
    assert f"is version {TINY_VERSION}, the run in {tmp_path} learned from other" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_mismatched_goal_literals_fall_in_their_groups(probe):
    # organize, 5 objects: tables 0 and 1, cups 2 and 3, items 4 5 in cup 2 and 6 in cup 3; cup 2 moved
    contents = {2: [4, 5], 3: [6]}
    group = lambda pred, s, o: probe.mismatch_group({"predicate": pred, "subject": s, "object": o}, 2, 1, contents)
    assert group("inside", 5, 2) == "contents_inside_target"
    assert group("inside", 6, 3) == "other_contents_inside"
    assert group("above", 2, 1) == "target_above_table_b"
    assert group("above", 3, 1) == "other_containers_stay"
    assert group("left", 3, 2) == "order"
    assert group("in_contact", 4, 5) == "other"


def test_anatomy_tallies_first_failures(probe):
    runs = [{"outcome": "success", "plan_steps": 2, "leaves_container": False},
            {"outcome": "failure_detected", "plan_steps": 1, "leaves_container": True, "failure_step": 0,
             "groups": ["contents_inside_target", "other_containers_stay"]},
            {"outcome": "failure_detected", "plan_steps": 2, "leaves_container": False, "failure_step": 1,
             "groups": ["order"]}]
    t = probe.anatomy(runs)
    assert (t["trials"], t["successes"], t["failures"], t["failures_at_first_step"]) == (3, 1, 2, 1)
    assert t["plans_leaving_a_container"] == 1
    assert t["mispredicted"] == {"contents_inside_target": 1, "target_above_table_b": 0, "other_containers_stay": 1,
                                 "other_contents_inside": 0, "order": 1, "other": 0}


def test_a_planned_trial_reports_its_plan_and_first_failure(probe, tmp_path):
    # the untrained tiny model plans ONE pick-and-place for two loaded cups and fails at it
    ckpt = str(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    r = probe.anatomy_trial(ckpt, "organize", 5, 0)
    assert (r["outcome"], r["plan_steps"], r["leaves_container"], r["failure_step"]) == ("failure_detected", 1, True, 0)
    assert "contents_inside_target" in r["groups"] and set(r["groups"]) <= set(probe.ANATOMY_GROUPS)


def test_markdown_has_a_planned_table_per_cell(probe):
    tally = probe.anatomy([{"outcome": "failure_detected", "plan_steps": 1, "leaves_container": True,
                            "failure_step": 0, "groups": ["other_containers_stay"]}])
    group = {"correct": 1, "literals": 2, "accuracy": 0.5, "mean_p": 0.4}
    result = {"command": "probe", "scenes": 1, "scene_seeds": "s", "placement": "p", "trials": 1, "trial_seeds": "t",
              "tasks": {"organize": {"5": {"cases": 2, "methods": {
                  "original": {"checkpoint": "c", "version": "v", "target_above_table_b": group, "planned": tally}}}}}}
    md = probe.markdown(result)
    assert "| original | 1/2 |" in md
    assert "| original | 0/1 | 1/1 | 1/1 | 0/1 | 0/1 | 1/1 | 0/1 | 0/1 | 0/1 |" in md


@pytest.fixture(scope="module")
def organize_edges(probe):
    cfg, backend = world()
    return probe.edge_cases("organize", 5, 1, backend, Camera.from_config(cfg, "front"))


def test_edge_grid_truth_follows_table_b(probe, organize_edges):
    k = len(probe.EDGE_GRID)
    assert [c["target"] for c in organize_edges] == ["cup_0", "cup_1"]
    for case in organize_edges:
        cells, truth = case["cells"], case["truth"]
        assert len(cells) == len(truth) == len(case["params"]) and 0 < len(cells) < k * k   # far cells out of reach
        on = {c for c, t in zip(cells, truth) if t}
        off = {c for c, t in zip(cells, truth) if not t}
        outer_x = {u * k + v for u in (0, k - 1) for v in range(k)}    # ±0.36 m in x: past the 0.25 m half-size
        assert outer_x & set(cells) <= off
        assert on, "some reachable placement lands on table_b"
    # the cup nearer table_b reaches more of the grid, including its centre, which is on the table
    near = max(organize_edges, key=lambda c: len(c["cells"]))
    centre = (k // 2) * k + k // 2
    assert centre in near["cells"] and near["truth"][near["cells"].index(centre)]


def test_score_edges_counts_every_placement_once(probe, organize_edges):
    r = probe.score_edges(tiny_model(), organize_edges, n_points=32)
    total = sum(len(c["cells"]) for c in organize_edges)
    assert r["placements"] == total == r["off_table"] + r["on_table"]
    assert r["correct"] == total - r["false_above"] - r["false_not_above"]
    ex = r["example"]
    assert sum(v is not None for v in ex["p"]) == max(len(c["cells"]) for c in organize_edges)
    assert all(v is None or 0.0 <= v <= 1.0 for v in ex["p"])


def test_markdown_and_plot_show_the_edges(probe, organize_edges, tmp_path):
    edges = probe.score_edges(tiny_model(), organize_edges, n_points=32)
    result = {"command": "probe", "scenes": 1, "scene_seeds": "s", "placement": "p", "trials": 0, "trial_seeds": "t",
              "tasks": {"organize": {"5": {"cases": 2, "edge_grids": 2, "methods": {
                  "original": {"checkpoint": "c", "version": "v", "table_b_edges": edges}}}}}}
    md = probe.markdown(result)
    assert (f"| original | {edges['correct']}/{edges['placements']} | {edges['false_above']}/{edges['off_table']} "
            f"| {edges['false_not_above']}/{edges['on_table']} |") in md
    probe.plot_edges(result, tmp_path / "edges.png")
    assert (tmp_path / "edges.png").stat().st_size > 1000
