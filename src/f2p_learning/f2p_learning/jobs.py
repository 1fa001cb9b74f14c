"""The learner's jobs: failure events in, signed validated models out, each event exactly once.

:class:`Learner` owns a durable queue of events (``f2p_failure.queue.EventQueue`` in
``queue_dir``) and a :class:`~f2p_learning.store.ModelStore`. :meth:`Learner.submit` stores an
event before anything acknowledges it (idempotent by event id). :meth:`Learner.run_next` takes
the oldest pending event and runs one job in a worker process — ``f2p-learn`` (classify, SVGD
over states and actions, D+ in simulation, fine-tuning, the regression gate; :mod:`f2p_learning.learn`)
with its torch threads bounded by ``worker_threads`` — reporting each stage as it ends. Then:

* learned and deployable: the child is signed (Ed25519, ``signing_key``) and stored with its
  lineage; the event moves to ``learned/``;
* learned but refused by the gate: stored unsigned as evidence, event to ``not_deployable/``;
* a sim-to-real gap (the simulator does not reproduce the failure): event to ``not_learnable/``;
* anything else (bad input, no D+, diverged inference, a crash): event to ``failed/`` with why.

The event leaves the pending queue only after its outcome is stored, so a learner killed at
any moment runs the job again from the start on restart (``--fresh``; the same seeds give the
same child, which the store already holds or takes once). The parent of a job is the model that
failed: the stored model with the event's ``model_version``, else the configured checkpoint.
No ROS.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from f2p_failure.events import FailureEvent, event_path, load_event
from f2p_failure.queue import EventQueue
from f2p_learning.store import ModelStore, StoredModel
from f2p_skill_effect.checkpoint import CheckpointError

#: Where a job's event moves (module docstring).
JOB_STATES = ("learned", "not_deployable", "not_learnable", "failed")
#: Share of a job's time per f2p-learn stage (measured on the demo's transport-3 failure), for progress.
STAGE_SHARE = {"load": 0.01, "classify": 0.04, "infer": 0.30, "simulate": 0.15, "fine_tune": 0.45, "validate": 0.05}


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM it when the learner dies (Linux), so a learner killed
    mid-job leaves no orphan writing into the job folder it will run again on restart."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class LearnerConfig:
    """queue_dir: the learner's event queue; store_dir: its model store; checkpoint: the parent
    when the failed model is not in the store; signing_key: Ed25519 private key (PEM) that
    signs deployable children (None: unsigned, and a robot with require_signed refuses them);
    replay_data / regression_data: dataset folders for fine-tuning replay and the gate (no
    regression data: nothing is deployable); the learn settings; worker_threads: torch / OMP
    threads of the worker process (the robot graph may share the CPU); layout: the world
    config's layout failures are replayed in ('' = the file's own)."""

    queue_dir: str | Path
    store_dir: str | Path
    checkpoint: str | Path
    signing_key: str | Path | None = None
    replay_data: Sequence[str | Path] = ()
    regression_data: Sequence[str | Path] = ()
    regression_tolerance: float = 0.02
    particles: int = 20
    svgd_steps: int = 60
    epochs: int = 200
    seed: int = 0
    worker_threads: int = 1
    layout: str = ""
    extra_args: Sequence[str] = field(default_factory=tuple)


@dataclass
class JobResult:
    """One job's end: ``event_id``, ``outcome`` (f2p-learn's, or ``crashed``), the event's new
    ``state``, the ``model`` stored (None if none), whether it is ``deployable``, and ``reason``."""

    event_id: str
    outcome: str
    state: str
    model: StoredModel | None
    deployable: bool
    reason: str
    report: dict | None = None


class Learner:
    def __init__(self, cfg: LearnerConfig):
        self.cfg = cfg
        self.queue = EventQueue(cfg.queue_dir, JOB_STATES)
        self.store = ModelStore(cfg.store_dir)
        self.jobs_dir = Path(cfg.queue_dir) / "jobs"
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    # --- the queue -------------------------------------------------------------------
    def submit(self, event: FailureEvent) -> tuple[Path, str]:
        """Queue ``event`` durably (FailureEventError when malformed, OSError when the queue
        cannot be written): (its path, ``"queued"`` or the state it already has)."""
        path, new = self.queue.put(event)
        return path, "queued" if new else f"already {self.queue.where(event.event_id)}"

    def parent_for(self, event: FailureEvent) -> Path:
        stored = self.store.find(event.model_version)
        return stored.path if stored is not None else Path(self.cfg.checkpoint)

    # --- one job ---------------------------------------------------------------------
    def run_next(self, progress: Callable[[str, str, float, str], None] = lambda *a: None) -> JobResult | None:
        """Run the oldest pending event's job (module docstring); None when nothing is pending.
        ``progress(event_id, stage, fraction, status)`` as each stage ends."""
        pending = self.queue.pending()
        if not pending:
            return None
        event_id = pending[0].name[:-len(".f2pevent")]
        try:
            event = load_event(pending[0])
        except Exception as exc:             # noqa: BLE001  an event that no longer loads: failed, kept
            return self._finish(event_id, "crashed", "failed", None, False, f"the queued event does not load: {exc}",
                                None, progress)
        parent = self.parent_for(event)
        out = self.jobs_dir / event_id
        progress(event_id, "queued", 0.0, f"learning from {event.skill} on segment {event.target}, parent {parent.name}")
        code, lines = self._run_worker(event_id, parent, out, progress)
        report = self._report(out)
        if report is None or code not in (0, 2, 3, 4):
            why = (report or {}).get("result") or (lines[-1] if lines else f"the worker exited with {code}")
            if code == 5 or (report or {}).get("outcome") == "interrupted":
                return JobResult(event_id, "interrupted", "pending", None, False, "stopped: the job runs again")
            return self._finish(event_id, "crashed", "failed", None, False, why, report, progress)
        outcome = report["outcome"]
        if outcome == "sim_to_real_gap":
            return self._finish(event_id, outcome, "not_learnable", None, False, report["result"], report, progress)
        if outcome != "learned":
            return self._finish(event_id, outcome, "failed", None, False, report["result"], report, progress)
        deployable = bool(report["deployable"])
        lineage = {"event_ids": [event_id], "parent_checkpoint": str(parent),
                   "replay_data": [str(d) for d in self.cfg.replay_data],
                   "regression_data": [str(d) for d in self.cfg.regression_data],
                   "regression_gate": report.get("regression_gate"), "learn_report": report}
        try:
            stored = self.store.add(out / "model.pt", lineage, self.cfg.signing_key if deployable else None)
        except (CheckpointError, OSError) as exc:
            return self._finish(event_id, "crashed", "failed", None, False, f"cannot store the child: {exc}", report,
                                progress)
        progress(event_id, "store", 0.98, f"stored {stored.version}" + (" (signed)" if stored.signed else ""))
        reason = ("passed the regression gate" if deployable else
                  (report.get("regression_gate") or {}).get("reason") or "refused by the regression gate")
        return self._finish(event_id, outcome, "learned" if deployable else "not_deployable", stored, deployable, reason,
                            report, progress)

    def _finish(self, event_id, outcome, state, model, deployable, reason, report, progress) -> JobResult:
        self.queue.move(event_id, state)
        progress(event_id, "done" if state in ("learned", "not_deployable", "not_learnable") else "failed", 1.0,
                 f"{outcome}: {reason}")
        return JobResult(event_id, outcome, state, model, deployable, reason, report)

    @staticmethod
    def _report(out: Path) -> dict | None:
        try:
            return json.loads((out / "learn_report.json").read_text())
        except (OSError, ValueError):
            return None

    def _run_worker(self, event_id: str, parent: Path, out: Path, progress) -> tuple[int, list[str]]:
        c = self.cfg
        cmd = [sys.executable, "-m", "f2p_learning.learn", "--event", str(event_path(self.queue.folder, event_id)),
               "--checkpoint", str(parent), "--out-dir", str(out), "--fresh", "--particles", str(c.particles),
               "--svgd-steps", str(c.svgd_steps), "--epochs", str(c.epochs), "--seed", str(c.seed),
               "--regression-tolerance", str(c.regression_tolerance), *c.extra_args]
        if c.layout:
            cmd += ["--layout", c.layout]
        if c.replay_data:
            cmd += ["--replay-data", *map(str, c.replay_data)]
        if c.regression_data:
            cmd += ["--regression-data", *map(str, c.regression_data)]
        threads = str(c.worker_threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}      # torch reads them at start
        out.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                          preexec_fn=_die_with_parent)
        lines, done = [], 0.0
        for line in self._proc.stdout:
            line = line.rstrip()
            lines.append(line)
            for stage, share in STAGE_SHARE.items():
                if line.startswith(f"[f2p-learn] {stage}:"):
                    done += share
                    progress(event_id, stage, min(0.95, done), line[len("[f2p-learn] "):])
        code = self._proc.wait()
        with self._lock:
            self._proc = None
        return code, lines[-50:]

    def stop(self) -> None:
        """Stop a running job (SIGTERM: f2p-learn reports ``interrupted``); its event stays pending."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
