"""make bench-guardian at a small size, run as a user runs it: the verifiers' benchmark on a
FailCoT of a few scenes (one epoch each) and the in-the-loop benchmark over DDS, two trials per
setting; both write their reports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def test_the_verifier_benchmark_runs_small(tmp_path):
    _run(["benchmarks/guardian.py", "--quick", "--work", str(tmp_path / "work"), "--results", str(tmp_path),
          "--threads", "1"], tmp_path)
    report = json.loads((tmp_path / "guardian.json").read_text())
    assert {"symbolic", "baseline", "vlm vanilla", "vlm dropout", "vlm thinking"} <= set(report["verifiers"])
    for v in report["verifiers"].values():
        assert v["count"] == sum(m["count"] for m in v["modes"].values()) > 0
    assert report["verifiers"]["symbolic"]["accuracy"] >= 0.9 and len(report["scaling"]) == 3
    assert (tmp_path / "guardian.md").read_text().startswith("# Guardian") and (tmp_path / "guardian.png").exists()


def test_the_loop_benchmark_runs_small(tmp_path):
    _run(["benchmarks/guardian_loop.py", "--trials", "2", "--results", str(tmp_path)], tmp_path)
    report = json.loads((tmp_path / "guardian_loop.json").read_text())
    assert set(report["settings"]) == {"open_loop", "relations", "guardian"}
    assert all(s["trials"] == 2 for s in report["settings"].values())


def test_the_loop_runs_with_the_afil_controller(tmp_path):
    """The stack's task success with AFIL's shipped controller executing the skills (issue 33)."""
    _run(["benchmarks/guardian_loop.py", "--trials", "1", "--settings", "open_loop", "--controller", "afil",
          "--noise", "0", "--name", "afil_stack", "--results", str(tmp_path)], tmp_path)
    report = json.loads((tmp_path / "afil_stack.json").read_text())
    assert report["controller"] == "afil" and report["settings"]["open_loop"]["trials"] == 1
    assert (tmp_path / "afil_stack.md").read_text().startswith("# The loop on transport-3: afil controller")
