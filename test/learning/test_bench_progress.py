"""bench-f2p's resumable progress and its report writer (benchmarks/fail2progress.py)."""
import json

import pytest

from support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("fail2progress.py")


def test_progress_computes_each_cell_once_and_resumes(bench, tmp_path):
    path, settings = tmp_path / "progress.json", {"trials": 20, "parent": "abc"}
    calls = []
    p = bench.Progress(path, settings, fresh=False)
    assert p.get("a", lambda: calls.append(1) or {"successes": 3}) == {"successes": 3}
    assert p.get("a", lambda: calls.append(1) or {"successes": 99}) == {"successes": 3}
    assert calls == [1]
    assert json.loads(path.read_text())["cells"] == {"a": {"successes": 3}}
    # a second run with the same settings reuses the cell; a failing computation stores nothing
    p2 = bench.Progress(path, settings, fresh=False)
    assert p2.get("a", lambda: pytest.fail("recomputed")) == {"successes": 3}
    with pytest.raises(RuntimeError):
        p2.get("b", lambda: (_ for _ in ()).throw(RuntimeError("fine-tune failed")))
    assert "b" not in json.loads(path.read_text())["cells"]


def test_progress_refuses_another_runs_cells_and_fresh_discards_them(bench, tmp_path):
    path = tmp_path / "progress.json"
    bench.Progress(path, {"trials": 20, "parent": "abc"}, fresh=False, meta={"parent_path": "/m/abc.pt"}).get("a", lambda: 1)
    saved = path.read_text()
    assert json.loads(saved)["parent_path"] == "/m/abc.pt"      # meta is kept beside the cells
    with pytest.raises(bench.OtherRunError, match="trials: 20 there, 100 here.*another --work, or --fresh"):
        bench.Progress(path, {"trials": 100, "parent": "abc"}, fresh=False)
    assert path.read_text() == saved                             # refused, nothing lost
    assert bench.Progress(path, {"trials": 100, "parent": "abc"}, fresh=True).get("a", lambda: 2) == 2


def test_main_refuses_a_work_folder_of_another_recipe(bench, tmp_path, capsys):
    (tmp_path / "progress.json").write_text(json.dumps({"settings": {"parent": "x", "trials": 3}, "cells": {"k": 1}}))
    before = (tmp_path / "progress.json").read_text()
    assert bench.main(["--recipe", "paper", "--work", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "holds 1 cells of a run with other settings" in err and "epochs: None there, 200 here" in err
    assert (tmp_path / "progress.json").read_text() == before and not (tmp_path / "out.json").exists()


def test_write_outputs_marks_quick_runs_and_tabulates(bench, tmp_path):
    cell = {"successes": 7, "trials": 10, "success_rate": 0.7, "outcomes": {"success": 7, "failure_detected": 3}}
    result = {"command": "python benchmarks/fail2progress.py --quick", "quick": True, "trials_per_cell": 10, "epochs": 5,
              "large_epochs": 1, "parent_version": "abc", "machine": {"platform": "x", "cpu_count": 2},
              "tasks": {"transport": {"events": {"3": {"id": "e1", "task_seed": 1000}}, "methods": {
                  "original": {"success": {"3": dict(cell, successes=1, success_rate=0.1)}},
                  "fail2progress": {"success": {"3": cell}, "learning": {"3": {
                      "learn_seconds": 40.0, "optimization_time_s": 4.2,
                      "dataset_quality": {"failure_relation_satisfaction": 0.95, "action_spread_std": [0.1, 0.2, 0.05]}}}}}}}}
    bench.write_outputs(result, tmp_path / "out" / "fail2progress")
    md = (tmp_path / "out" / "fail2progress.md").read_text()
    assert "QUICK SMOKE RUN" in md
    assert "| fail2progress | 7/10 | 70% | 40.00 | 4.20 | – | 0.95 | 0.10, 0.20, 0.05 |" in md
    assert "| original | 1/10 | 10% |" in md
    assert "**Fail2Progress mean 70%; best baseline of paper §6 / A.16: original 10%.**" in md
    assert ("**Mean success over every task and object count:** original 10% (1/10, 1 cell); "
            "fail2progress 70% (7/10, 1 cell).") in md
    assert "Run here (`--methods`): original, fail2progress. Not run: replanning, small, large" in md
    assert "`large_task` is a reference" not in md   # not run, so not explained
    assert json.loads((tmp_path / "out" / "fail2progress.json").read_text())["tasks"]["transport"]["events"]["3"]["id"] == "e1"


def test_write_outputs_states_a_recipe_other_than_the_papers(bench, tmp_path):
    cell = {"successes": 9, "trials": 10, "success_rate": 0.9, "outcomes": {"success": 9, "failure_detected": 1}}
    result = {"command": "python benchmarks/fail2progress.py --particles 200", "quick": False, "trials_per_cell": 10,
              "epochs": 40, "large_epochs": 1, "parent_version": "abc", "particles": 200, "lr": 5e-4, "anchor_weight": 1.0,
              "machine": {"platform": "x", "cpu_count": 2},
              "tasks": {"organize": {"events": {"5": {"id": "e1", "task_seed": 1000}}, "methods": {
                  "fail2progress": {"success": {"5": cell}}}}}}
    bench.write_outputs(result, tmp_path / "fail2progress")
    md = (tmp_path / "fail2progress.md").read_text()
    assert "M = 200 particles, lr 0.0005, placement anchor weight 1 (not the paper's recipe)" in md
    assert "Every targeted method builds 200 transitions" in md and "| D+ usable of 200 |" in md
    bench.write_outputs(dict(result, keep_unseen_after=True), tmp_path / "five")
    assert ("placement anchor weight 1, transitions with an object falling out of view kept (recipe `five-minute`, "
            "benchmarks/studies/README.md; not the paper's)") in (tmp_path / "five.md").read_text()
    paper = dict(result, particles=20, lr=1e-4, anchor_weight=0.0, epochs=200)
    bench.write_outputs(paper, tmp_path / "paper")
    assert "M = 20 particles, lr 0.0001, placement anchor weight 0 (the paper's recipe);" in (tmp_path / "paper.md").read_text()
    bench.write_outputs(dict(paper, epochs=40), tmp_path / "short")
    assert "placement anchor weight 0 (not the paper's recipe);" in (tmp_path / "short.md").read_text()
    bench.write_outputs(dict(paper, keep_unseen_after=True), tmp_path / "unseen")
    assert ("placement anchor weight 0, transitions with an object falling out of view kept (not the paper's recipe)"
            in (tmp_path / "unseen.md").read_text())


def test_write_outputs_compares_a_partly_run_baseline_on_its_own_cells(bench, tmp_path):
    rate = lambda k: {"successes": k, "trials": 100, "success_rate": k / 100, "outcomes": {"success": k}}
    result = {"command": "python benchmarks/fail2progress.py --report-only", "quick": False, "report_only": True,
              "trials_per_cell": 100, "epochs": 40, "large_epochs": 10, "parent_version": "abc",
              "machine": {"platform": "x", "cpu_count": 2},
              "tasks": {"organize": {"events": {}, "methods": {
                  "sampling": {"success": {"7": rate(27)}, "learning": {"3": {"error": "not run"},
                                                                        "5": {"error": "not run"}}},
                  "fail2progress": {"success": {"3": rate(100), "5": rate(96), "7": rate(63)}}}}}}
    bench.write_outputs(result, tmp_path / "partial")
    md = (tmp_path / "partial.md").read_text()
    assert "| sampling | not run | not run | 27/100 | 27% |" in md
    assert ("**Fail2Progress mean 86%; best baseline of paper §6 / A.16: sampling 27% on the 7-object cell it ran, "
            "where Fail2Progress has 63%.**") in md


def test_write_outputs_calls_a_run_without_only_the_reference_the_full_comparison(bench, tmp_path):
    cell = {"successes": 5, "trials": 10, "success_rate": 0.5, "outcomes": {"success": 5}}
    methods = {m: {"success": {"3": cell}} for m in bench.ALL_METHODS if m not in bench.REFERENCES}
    result = {"command": "python benchmarks/fail2progress.py", "quick": False, "trials_per_cell": 10, "epochs": 40,
              "large_epochs": 10, "parent_version": "abc", "machine": {"platform": "x", "cpu_count": 2},
              "tasks": {"transport": {"events": {}, "methods": methods}}}
    bench.write_outputs(result, tmp_path / "all_but_reference")
    md = (tmp_path / "all_but_reference.md").read_text()
    assert "Not run: large_task, a reference beyond §6, so every §6 / A.16 method is compared." in md
    del methods["sampling"]
    bench.write_outputs(result, tmp_path / "missing_baseline")
    assert "Not run: large_task, sampling, so this is not the full comparison." in (tmp_path / "missing_baseline.md").read_text()


@pytest.mark.parametrize("argv", [["--particles", "0"], ["--lr", "0"], ["--anchor-weight", "-1"],
                                  ["--anchor-weight", "inf"], ["--lr", "nan"]])
def test_parse_args_refuses_a_bad_recipe(bench, argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2 and "--particles must be >= 1" in capsys.readouterr().err


def test_parse_args_default_recipe_is_the_five_minute_one_and_paper_is_one_flag(bench):
    from f2p_skill_effect.checkpoint import shipped_model
    a = bench.parse_args([])
    assert (a.recipe, a.particles, a.lr, a.anchor_weight, a.epochs, a.keep_unseen_after) == ("five-minute", 200, 5e-4, 1.0, 40, True)
    assert a.parent == "skill_effect_target_relations.pt" and a.particles_ablation == [5, 10, 20, 40, 200]
    assert (a.work, a.out.split("/")[-1]) == ("/tmp/f2p-bench", "fail2progress")
    p = bench.parse_args(["--recipe", "paper"])
    assert (p.particles, p.lr, p.anchor_weight, p.epochs, p.keep_unseen_after) == (20, 1e-4, 0.0, 200, False)
    assert p.parent == "skill_effect_pretrained.pt" and p.particles_ablation == [5, 10, 20, 40]
    assert (p.work, p.out.split("/")[-1]) == ("/tmp/f2p-bench-paper", "fail2progress_paper")
    # a recipe's single settings can be overridden, wherever --recipe stands
    o = bench.parse_args(["--particles", "40", "--recipe", "paper", "--keep-unseen-after"])
    assert (o.particles, o.epochs, o.keep_unseen_after) == (40, 200, True)
    assert bench.parse_args(["--no-keep-unseen-after"]).keep_unseen_after is False
    assert bench.parse_args(["--quick"]).particles == 20     # a smoke run stays small
    for name, recipe in bench.RECIPES.items():               # every recipe's parent is shipped
        assert shipped_model(recipe["parent"]).is_file(), name


def test_recipe_reaches_learning_and_random_fine_tuning_alike(bench):
    a = bench.parse_args(["--lr", "5e-4", "--anchor-weight", "1", "--keep-unseen-after"])
    r = bench.fine_tune_recipe(a)
    assert (r.epochs, r.lr, r.anchor_weight, r.keep_unseen_after) == (40, 5e-4, 1.0, True)
    assert (r.batch_size, r.replay_fraction, r.relabel_objects) == (4, 0.5, True)    # the learner's own
    assert bench.fine_tune_recipe(a, epochs=10).epochs == 10 and bench.fine_tune_recipe(a, epochs=10).lr == 5e-4


def _loaded_container_moves(folder) -> int:
    from f2p_common.dataset import SimDataset
    from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS
    inside, moves = BINARY_RELATIONS.index("inside"), 0
    for t in SimDataset(folder).transitions(skip_flags=0):
        if list(SKILLS)[int(t["skill"])] in ("pick_place", "push") and t["rel_t_binary"][:, int(t["target"]), inside].any():
            moves += 1
    return moves


def test_random_baseline_data_defaults_to_the_pre_training_distribution(bench, tmp_path):
    """Small / Large fine-tune on random transitions of the pre-training distribution (paper 000
    §6), which never moves a loaded container; large_task draws the tasks' own."""
    pre = bench.random_dataset(tmp_path / "pre", 8, seed=5, tasks=["transport"], object_counts=[3])
    assert pre.manifest["params"]["hold_out_failure_modes"] is True and pre.manifest["params"]["steps_per_scene"] == 8
    assert pre.transitions == 8 and _loaded_container_moves(tmp_path / "pre") == 0
    task = bench.random_dataset(tmp_path / "task", 8, seed=5, hold_out_failure_modes=False, tasks=["transport"],
                                object_counts=[3])
    assert task.manifest["params"]["hold_out_failure_modes"] is False
    assert _loaded_container_moves(tmp_path / "task") > 0
