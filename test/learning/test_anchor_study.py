"""benchmarks/anchor_study.py: its settings are checked, its seeds stay off bench-f2p's, its table renders."""
import json

import pytest

from support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def study():
    return load_benchmark("anchor_study.py")


@pytest.mark.parametrize("bad", [["--cells", "organize5"], ["--tr-cells", "kitchen:3"], ["--anchor-weight", "0"],
                                 ["--tr-recipes", "5e-4"], ["--tr-recipes", "fast:40"], ["--tr-recipes", "5e-4:0"],
                                 ["--tr-recipes", "5e-4:40@kitchen:3"], ["--tr-table-edge-fraction", "1.5"]])
def test_bad_settings_are_usage_errors(study, bad):
    with pytest.raises(SystemExit) as e:
        study.parse_args(bad)
    assert e.value.code == 2


def test_development_seeds_never_meet_the_reported_ones(study):
    import fail2progress
    assert fail2progress.evaluation_task_seed(5, 3) == 35003                # bench-f2p's evaluation scenes
    dev = {fail2progress.evaluation_task_seed(n, i, study.DEV_SEED_BASE) for n in (3, 5, 7) for i in range(100)}
    reported = {fail2progress.evaluation_task_seed(n, i) for n in (3, 5, 7) for i in range(100)}
    probe = {90000 + 1000 * n + i for n in (3, 5, 7) for i in range(100)} | {95000 + 1000 * n + i for n in (3, 5, 7) for i in range(100)}
    assert not dev & reported and not dev & probe and min(dev) > 1019      # nor a failure search's 1000..1019


def test_a_missing_bench_run_is_a_clear_error(study, tmp_path):
    with pytest.raises(SystemExit, match="holds no bench-f2p run"):
        study.main(["--bench-work", str(tmp_path / "none"), "--work", str(tmp_path / "w"), "--tr-cells"])
    assert not (tmp_path / "w").exists()


def test_a_bench_run_of_another_parent_is_a_clear_error(study, tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "progress.json").write_text(json.dumps({"settings": {"parent": "6918c570aa846512"}, "cells": {}}))
    with pytest.raises(SystemExit, match="from parent 6918c570aa846512, not the shipped model's.*--recipe paper"):
        study.main(["--bench-work", str(tmp_path / "bench"), "--work", str(tmp_path / "w"), "--tr-cells"])
    assert not (tmp_path / "w").exists()


def test_markdown_tabulates_both_sides_of_each_row(study):
    side = lambda s, fa: {"successes": s, "trials": 30, "false_above": fa, "off_table": 144,
                          "lesson": {"contents_inside_target (2 in target)": [12, 16]}}
    result = {"command": "python benchmarks/anchor_study.py", "machine": {"platform": "x", "cpu_count": 2},
              "settings": {"anchor_weight": 1.0, "trials": 30}, "seeds": {"trials": "task 70000 + 1000*n + i"},
              "results": [{"row": "paper", "task": "organize", "objects": 3, "method": "fail2progress",
                           "plain": side(25, 25), "anchor": side(30, 2)}]}
    md = study.markdown(result)
    assert "| paper | organize 3 | fail2progress | 25/30 | 30/30 | 25/144 | 2/144 | 2-item 12/16 | 2-item 12/16 | - / - |" in md


def test_target_relations_recipes_name_their_rows(study):
    a = study.parse_args(["--tr-recipes", "1e-4:200", "5e-4:40@transport:3,organize:3"])
    assert a.tr_recipes == [(1e-4, 200, ["organize:5", "organize:7"]), (5e-4, 40, ["transport:3", "organize:3"])]
    # the paper's recipe keeps the row name (and so the progress keys) of runs made before recipes existed
    assert [study.tr_row(lr, ep) for lr, ep, _ in a.tr_recipes] == ["tr200", "tr200 lr 0.0005 x 40"]


def test_markdown_of_an_anchored_only_run_on_a_table_edge_parent(study):
    anchored = {"successes": 27, "trials": 30, "false_above": 3, "off_table": 380, "learn_seconds": 250.0,
                "lesson": {"contents_inside_target (1 in target)": [16, 16]}}
    result = {"command": "python benchmarks/anchor_study.py --anchored-only", "machine": {"platform": "x", "cpu_count": 2},
              "settings": {"anchor_weight": 1.0, "trials": 30, "tr_table_edge_fraction": 0.5},
              "seeds": {"trials": "task 70000 + 1000*n + i"},
              "results": [{"row": "tr200 lr 0.0005 x 40", "task": "organize", "objects": 7, "method": "fail2progress",
                           "anchor": anchored}]}
    md = study.markdown(result)
    assert "| tr200 lr 0.0005 x 40 | organize 7 | fail2progress | - | 27/30 | - | 3/380 | - | 1-item 16/16 | - / 250 |" in md
    assert "50% of them, over the tables' whole tops" in md and "not run (--anchored-only)" in md
    assert study.parse_args(["--anchored-only", "--tr-table-edge-fraction", "0.5"]).tr_table_edge_fraction == 0.5
    result["settings"]["keep_unseen_after"] = True
    assert "falls out of view (f2p-learn --keep-unseen-after)" in study.markdown(result)
