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


@pytest.mark.parametrize("settings,fresh", [({"trials": 100, "parent": "abc"}, False), ({"trials": 20, "parent": "abc"}, True)])
def test_progress_discards_cells_of_other_settings_or_fresh(bench, tmp_path, settings, fresh):
    path = tmp_path / "progress.json"
    bench.Progress(path, {"trials": 20, "parent": "abc"}, fresh=False).get("a", lambda: 1)
    assert bench.Progress(path, settings, fresh=fresh).get("a", lambda: 2) == 2


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
    assert json.loads((tmp_path / "out" / "fail2progress.json").read_text())["tasks"]["transport"]["events"]["3"]["id"] == "e1"
