"""The learner's jobs: failure events in, signed validated models out, each event exactly once.

:class:`Learner` owns a durable queue of events (``f2p_failure.queue.EventQueue`` in
``queue_dir``) and a :class:`~f2p_learning.store.ModelStore`. :meth:`Learner.submit` stores an
event before anything acknowledges it (idempotent by event id). :meth:`Learner.run_next` takes
the oldest pending event and runs one job: the learner's :class:`~f2p_learning.learn.LearnConfig`
(``LearnerConfig.learn``) with this event, its parent and its job folder, given to
:func:`f2p_learning.learn.learn` (classify, SVGD over states and actions, D+ in simulation,
fine-tuning, the regression gate) in a worker process (:mod:`f2p_learning.job_worker`, torch
threads ``worker_threads``) that reports each stage as a structured message and returns the
:class:`~f2p_learning.learn.LearnReport`. Then:

* learned and deployable: the child is signed (Ed25519, ``signing_key``) and stored with its
  lineage; the event moves to ``learned/``;
* learned but refused by the gate: stored unsigned as evidence, event to ``not_deployable/``;
* a sim-to-real gap (the simulator does not reproduce the failure): event to ``not_learnable/``;
* a full disk (``no_space``: before the job, at any stage, or storing the child): the event
  stays pending and runs again later (the node waits ``no_space_retry_s``); a full disk passes;
* anything else (bad input, no D+, diverged inference, a crash): event to ``failed/`` with why.

The event leaves the pending queue only after its outcome is stored, so a learner killed at
any moment runs the job again from the start on restart (``fresh``; the same seeds give the
same child, which the store already holds or takes once); :meth:`Learner.stop` stops a running
job the same way (its event stays pending).

Producers: with ``enrolled_robots`` (a folder of ``<robot_id>.pub``), :meth:`Learner.submit`
takes an event only when its robot's key signed it (``f2p_failure.events.sign_event``); an event
id already queued with other content is refused either way.

The parent of a job is the model that failed, taken from the learner's own registry (the store
and the configured checkpoint) by the event's ``model_version``; a version the registry does not
hold gives the deployed model. An event never names a file: a ``model_version`` that is a path
is no version (issue 43: a forged event made a random-weight file the parent). The regression
gate compares the child with the **deployed** model (:meth:`Learner.note_deployed`, from the
planner's ``model_info``; the configured checkpoint until the robot says otherwise) and with
absolute floors, so a child of a bad parent is never deployable.

:data:`PARAMS` are the learner's settings as the ``learner`` node declares them and a params
file holds them; :func:`learner_config` maps validated values onto :class:`LearnerConfig` (the
node and ``f2p-learn-bag`` both use it: the same event gives the same child online and
offline). No ROS.
"""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from f2p_common import parameters as P
from f2p_common.resources import f2p_home
from f2p_common.interfaces import ModelInfo
from f2p_common.keys import SignatureError
from f2p_datasets.perceived import DEPTH_BACKENDS, SIMULATOR
from f2p_failure.events import FailureEvent, event_path, failure_signature, load_event, verify_event
from f2p_failure.queue import EventQueue
from f2p_learning import job_worker
from f2p_learning.learn import STAGES, LearnConfig, LearnReport
from f2p_learning.store import ModelStore, StoredModel
from f2p_sim.config import LAYOUTS
from f2p_common.files import file_sha256, write_atomic
from f2p_skill_effect.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, model_info
from f2p_training.train import FineTuneRecipe

#: What a robot id is where it names a key file: a name, never a path.
_ROBOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Where a job's event moves (module docstring).
JOB_STATES = ("learned", "not_deployable", "not_learnable", "failed", "merged")
#: States whose event speaks for every later event of the same failure (merge_same_failures).
_SPEAKS_FOR_ITS_FAILURE = ("pending", "learned", "not_deployable", "not_learnable")
#: Share of a job's time per learn stage (measured on the demo's transport-3 failure), for progress.
STAGE_SHARE = {"load": 0.01, "classify": 0.04, "infer": 0.30, "simulate": 0.15, "fine_tune": 0.45, "validate": 0.05}
assert tuple(STAGE_SHARE) == STAGES
#: Every stage a job reports (``LearnerProgress`` has a ``STAGE_*`` constant for each): queued on
#: the learner's disk, the learn stages, stored (and signed), offered to the robot, and the end.
JOB_STAGES = ("queued", *STAGES, "store", "swap", "done", "failed")

#: The learner's parameters (the ``learner`` node's, and a params file's ``learner:`` section).
PARAMS = [
    P.Param("max_event_segments", 64, "segments an event may have (more: refused as malformed)", P.at_least(1)),
    P.Param("max_event_mb", 64.0, "MiB of clouds an event may carry (more: refused before it is converted)",
            P.positive),
    P.Param("queue_dir", "", "the learner's event queue ('' = $ROS_HOME/f2p/learner)"),
    P.Param("store_dir", "", "the model store, one folder per version ('' = $ROS_HOME/f2p/models)"),
    P.Param("checkpoint", "", "parent when the failed model is not in the store ('' = the shipped pre-trained; "
                              "a shipped model's file name; a path)"),
    P.Param("signing_key", "", "Ed25519 private key (PEM, f2p-sign keygen) signing deployable children ('' = unsigned)"),
    P.Param("enrolled_robots", "", "folder of the robots' public keys, <robot_id>.pub: only events signed by their "
                                   "robot are taken ('' = unsigned events are taken too)"),
    P.Param("replay_data", [""], "dataset folders replayed during fine-tuning ([''] = none)"),
    P.Param("regression_data", [""], "held-out dataset folders for the regression gate ([''] = none: nothing deployable)"),
    P.Param("regression_tolerance", 0.02, "largest score drop from the deployed model a deployable child may show",
            P.positive_or_zero),
    P.Param("regression_min_detection_f1", 0.85, "floor of a deployable child's detection F1 on regression_data",
            P.probability),
    P.Param("regression_min_next_step_accuracy", 0.85, "floor of a deployable child's next-step accuracy on "
                                                       "regression_data", P.probability),
    P.Param("particles", 20, "M, the SVGD particles (paper A.5: 20)", P.at_least(2)),
    P.Param("svgd_steps", 60, "SVGD steps", P.at_least(1)),
    P.Param("epochs", 200, "fine-tuning epochs (paper: 200)", P.at_least(1)),
    P.Param("seed", 0, "seed of every job (the same event gives the same child)", P.positive_or_zero),
    P.Param("worker_threads", 1, "torch threads of the worker process", P.at_least(1)),
    P.Param("layout", "", "the simulated world's layout failures are replayed in ('' = paper; real_scale for a "
                          "robot's events: its workspace holds real furniture)", P.one_of("", *LAYOUTS)),
    P.Param("perception", SIMULATOR, "how D+ observes its simulated scenes: simulator (its own segments) or the "
            "robots' perception backend on a noisy organised depth cloud (geometric, convex): the child learns from "
            "the robot's kind of observation", P.one_of(SIMULATOR, *DEPTH_BACKENDS)),
    P.Param("push_to_robot", True, "call the planner's swap_model with each deployable child", live=True),
    P.Param("robot_id", "robot", "the robot its swap requests are signed for (the planner's robot_id), when "
                                 "robots is ['']", live=True),
    P.Param("merge_same_failures", True, "learn a failure once: an event describing one already queued or learned "
                                         "(same model, task, skill, mismatches and relations by class; any robot) is "
                                         "stored as merged"),
    P.Param("robots", [""], "the fleet: 'robot_id' or 'robot_id=/namespace' per robot (its planner's swap_model, "
                            "rollback_model, model_info and its executor's task_progress under that namespace); "
                            "[''] = one robot, robot_id, in the learner's namespace (f2p_learning.fleet)"),
    P.Param("swap_timeout_s", 60.0, "longest wait for the planner's answer (s)", P.positive, live=True),
    P.Param("no_space_retry_s", 60.0, "after a job found the disk full: wait this long before trying again (s)",
            P.positive, live=True),
    P.Param("min_free_mb", 512, "least free space (MiB) in the job folder to start a job", P.positive_or_zero),
]


@dataclass
class LearnerConfig:
    """queue_dir: the learner's event queue; store_dir: its model store; checkpoint: the parent
    when the failed model is not in the store; signing_key: Ed25519 private key (PEM) that
    signs deployable children (None: unsigned, and a robot with require_signed refuses them);
    enrolled_robots: folder of ``<robot_id>.pub`` keys, only events signed by their robot are
    taken (None: unsigned events too);
    worker_threads: torch / OMP threads of the worker process (the robot graph may share the
    CPU); merge_same_failures: an event describing a failure already queued or learned (by any
    robot; ``f2p_failure.events.failure_signature``) is stored as merged, not learned again;
    learn: every job's learn settings (event, checkpoint and out_dir are the job's)."""

    queue_dir: str | Path
    store_dir: str | Path
    checkpoint: str | Path
    signing_key: str | Path | None = None
    enrolled_robots: str | Path | None = None
    worker_threads: int = 1
    merge_same_failures: bool = True
    learn: LearnConfig = field(default_factory=LearnConfig)


def learner_config(v: dict) -> LearnerConfig:
    """The learner's settings from validated :data:`PARAMS` values (module docstring)."""
    home = f2p_home()
    if v["signing_key"] and not Path(v["signing_key"]).is_file():
        raise ValueError(f"signing_key {v['signing_key']} does not exist (make one: f2p-sign keygen KEY)")
    if v["enrolled_robots"] and not Path(v["enrolled_robots"]).expanduser().is_dir():
        raise ValueError(f"enrolled_robots {v['enrolled_robots']} is not a folder of <robot_id>.pub keys")
    return LearnerConfig(
        queue_dir=Path(v["queue_dir"] or home / "learner").expanduser(),
        store_dir=Path(v["store_dir"] or home / "models").expanduser(),
        checkpoint=checkpoint_path(v["checkpoint"]), signing_key=v["signing_key"] or None,
        enrolled_robots=Path(v["enrolled_robots"]).expanduser() if v["enrolled_robots"] else None,
        worker_threads=v["worker_threads"], merge_same_failures=bool(v["merge_same_failures"]),
        learn=LearnConfig(particles=v["particles"], svgd_steps=v["svgd_steps"],
                          fine_tune=FineTuneRecipe(epochs=v["epochs"]),
                          replay_data=[d for d in v["replay_data"] if d],
                          regression_data=[d for d in v["regression_data"] if d],
                          regression_tolerance=v["regression_tolerance"],
                          min_detection_f1=v["regression_min_detection_f1"],
                          min_next_step_accuracy=v["regression_min_next_step_accuracy"],
                          min_free_bytes=int(v["min_free_mb"]) * 2 ** 20, seed=v["seed"], layout=v["layout"] or None,
                          perception=v["perception"]))


@dataclass
class JobResult:
    """One job's end: ``event_id``, ``outcome`` (the learn step's, ``crashed``, ``interrupted``
    or ``no_space``), the event's new ``state`` (``pending`` when it runs again), the ``model`` stored (None if none), whether it
    is ``deployable``, ``reason``, the learn step's ``report`` and the ``robot_id`` whose failure it
    learned from."""

    event_id: str
    outcome: str
    state: str
    model: StoredModel | None
    deployable: bool
    reason: str
    report: LearnReport | None = None
    robot_id: str = ""


Progress = Callable[[str, str, float, str], None]


class Learner:
    def __init__(self, cfg: LearnerConfig):
        self.cfg = cfg
        self.queue = EventQueue(cfg.queue_dir, JOB_STATES)
        self.store = ModelStore(cfg.store_dir)
        self.jobs_dir = Path(cfg.queue_dir) / "jobs"
        self.configured = load_checkpoint(cfg.checkpoint)       # CheckpointError: configure fails, saying why
        self.deployed = Path(cfg.checkpoint)
        self._infos: dict[str, tuple[Path, ModelInfo]] = {}     # sha256 -> a registry file and its info
        self._proc: multiprocessing.Process | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()

    # --- the queue -------------------------------------------------------------------
    def submit(self, event: FailureEvent, signature: str = "") -> tuple[Path, str]:
        """Queue ``event`` durably (FailureEventError when malformed, EventIdConflict for an id
        taken by another event, SignatureError when robots are enrolled and it is not signed by
        its robot's key, OSError when the queue cannot be written): (its path, ``"queued"``,
        ``"merged into <event id>"`` when that event, queued or learned, describes the same failure
        (``merge_same_failures``; the merged event is stored in ``merged/`` and named in
        ``same_failures.json``), or the state it already has)."""
        if self.cfg.enrolled_robots is not None:
            event.validate()
            if not _ROBOT_ID.fullmatch(event.robot_id or ""):
                raise SignatureError(f"robot id {event.robot_id!r} names no enrolled robot")
            key = Path(self.cfg.enrolled_robots) / f"{event.robot_id}.pub"
            if not key.is_file():
                raise SignatureError(f"robot {event.robot_id!r} is not enrolled (no {key})")
            verify_event(event, signature, key)
        with self._queue_lock:             # a job never takes an event about to be merged
            path, new = self.queue.put(event, signature)
            if not new:
                return path, f"already {self.queue.where(event.event_id)}"
            if not self.cfg.merge_same_failures:
                return path, "queued"
            primary = self._same_failure(event)
            if primary is None:
                return path, "queued"
            return self.queue.move(event.event_id, "merged"), f"merged into {primary}"

    def _same_failure(self, event: FailureEvent) -> str | None:
        """The event already queued or learned that describes ``event``'s failure, or None (then
        ``event`` is recorded as that failure's event); ``same_failures.json`` keeps both maps."""
        index_path = Path(self.queue.folder) / "same_failures.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else {"by_signature": {}, "merged": {}}
        key = failure_signature(event)
        primary = index["by_signature"].get(key)
        if primary is not None and primary != event.event_id and self.queue.where(primary) in _SPEAKS_FOR_ITS_FAILURE:
            index["merged"][event.event_id] = primary
        else:
            index["by_signature"][key], primary = event.event_id, None
        write_atomic(index_path, json.dumps(index, indent=1) + "\n")
        return primary

    # --- the registry ----------------------------------------------------------------
    def registry_path(self, version: str) -> Path | None:
        """The file of the model ``version`` in the learner's registry (its store, or the configured
        checkpoint), or None: never a path the caller names."""
        stored = self.store.find(version)
        if stored is not None:
            return stored.path
        return Path(self.cfg.checkpoint) if version == self.configured.version else None

    def registry_file(self, sha256: str) -> tuple[Path, ModelInfo] | None:
        """The registry's model whose file has this SHA-256, with its info (what ``fetch_model``
        serves to robots that do not share the learner's disk), or None."""
        sha = sha256.lower()
        if sha not in self._infos:
            stored = self.store.by_sha256(sha)
            path = stored.path if stored is not None else Path(self.cfg.checkpoint)
            if stored is None and file_sha256(path) != sha:
                return None
            self._infos[sha] = (path, model_info(path))
        return self._infos[sha]

    def note_deployed(self, version: str, sha256: str) -> bool:
        """The robot now runs ``version`` with file digest ``sha256`` (the planner's ``model_info``):
        it becomes the gate's reference when the registry holds that very model; False otherwise
        (a model the learner does not know keeps the reference as it was)."""
        path = self.registry_path(version)
        if path is None or file_sha256(path) != sha256.lower():
            return False
        self.deployed = path
        return True

    def parent_for(self, event: FailureEvent) -> Path:
        """The model that failed, from the registry (module docstring)."""
        return self.registry_path(event.model_version) or self.deployed

    def job_config(self, event_id: str, parent: Path) -> LearnConfig:
        """The learn step of ``event_id``'s job: the learner's settings on this event, parent and
        folder, the gate comparing with the deployed model."""
        return replace(self.cfg.learn, event=event_path(self.queue.folder, event_id), checkpoint=parent,
                       reference_checkpoint=self.deployed, out_dir=self.jobs_dir / event_id, fresh=True, log=None,
                       on_stage=None)

    # --- one job ---------------------------------------------------------------------
    def run_next(self, progress: Progress = lambda *a: None, log: Callable[[str], None] = lambda _m: None
                 ) -> JobResult | None:
        """Run the oldest pending event's job (module docstring); None when nothing is pending.
        ``progress(event_id, stage, fraction, status)`` as each stage ends; ``log``: the learn
        step's own lines."""
        with self._queue_lock:
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
        progress(event_id, "queued", 0.0, f"learning from {event.skill} on segment {event.target}, parent {parent.name}")
        final = self._run_worker(event_id, self.job_config(event_id, parent), progress, log)
        kind, payload = final
        stopped = self._stopping
        if kind == "interrupted" or (kind == "report" and payload.outcome == "interrupted") or (
                stopped and kind != "report"):           # stopped (a kill before the report counts too)
            with self._lock:
                self._stopping = False
            return JobResult(event_id, "interrupted", "pending", None, False, "stopped: the job runs again",
                             payload if kind == "report" else None)
        if kind == "no_space" or (kind == "report" and payload.outcome == "no_space"):
            why = payload.result if kind == "report" else f"the disk is full: {payload}"
            progress(event_id, "failed", 1.0, f"no_space: {why}; the event stays queued")
            return JobResult(event_id, "no_space", "pending", None, False, why, payload if kind == "report" else None)
        if kind != "report":
            outcome = "bad_input" if kind == "bad_input" else "crashed"
            return self._finish(event_id, outcome, "failed", None, False, payload, None, progress)
        report: LearnReport = payload
        if report.outcome == "sim_to_real_gap":
            return self._finish(event_id, report.outcome, "not_learnable", None, False, report.result, report, progress)
        if report.outcome != "learned":
            return self._finish(event_id, report.outcome, "failed", None, False, report.result, report, progress)
        lineage = {"event_ids": [event_id], "robot_id": event.robot_id, "failed_model": event.model_version,
                   "parent_checkpoint": str(parent),
                   "replay_data": [str(d) for d in self.cfg.learn.replay_data],
                   "regression_data": [str(d) for d in self.cfg.learn.regression_data],
                   "regression_gate": report.regression_gate, "learn_report": _report_record(report)}
        try:
            stored = self.store.add(report.checkpoint, lineage, self.cfg.signing_key if report.deployable else None)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                progress(event_id, "failed", 1.0, f"no_space: cannot store the child ({exc}); the event stays queued")
                return JobResult(event_id, "no_space", "pending", None, False, f"cannot store the child: {exc}", report)
            return self._finish(event_id, "crashed", "failed", None, False, f"cannot store the child: {exc}", report,
                                progress)
        except CheckpointError as exc:
            return self._finish(event_id, "crashed", "failed", None, False, f"cannot store the child: {exc}", report,
                                progress)
        progress(event_id, "store", 0.98, f"stored {stored.version}" + (" (signed)" if stored.signed else ""))
        reason = ("passed the regression gate" if report.deployable else
                  (report.regression_gate or {}).get("reason") or "refused by the regression gate")
        return replace(self._finish(event_id, report.outcome, "learned" if report.deployable else "not_deployable",
                                    stored, report.deployable, reason, report, progress), robot_id=event.robot_id)

    def _finish(self, event_id, outcome, state, model, deployable, reason, report, progress) -> JobResult:
        self.queue.move(event_id, state)
        progress(event_id, "done" if state in ("learned", "not_deployable", "not_learnable") else "failed", 1.0,
                 f"{outcome}: {reason}")
        return JobResult(event_id, outcome, state, model, deployable, reason, report)

    def _run_worker(self, event_id: str, job: LearnConfig, progress: Progress, log) -> tuple[str, object]:
        """Run ``job`` in a worker process (:mod:`f2p_learning.job_worker`): its final message,
        ``("crashed", why)`` when it ended without one."""
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=job_worker.run, name=f"f2p-learn-{event_id[:8]}",
                           args=(job_worker.config_to_dict(job), self.cfg.worker_threads, send, os.getpid()))
        Path(job.out_dir).parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._stopping:                # stop() came before the job started
                return ("interrupted", "stopped before the job started")
            self._proc = proc
            proc.start()
        send.close()                          # the worker holds the only writing end: EOF when it ends
        final, done, last_lines = None, 0.0, []
        while True:
            try:
                msg = receive.recv()
            except Exception:                 # noqa: BLE001  EOF, or a message cut short by the worker's death
                break
            if msg[0] == "log":
                last_lines = (last_lines + [msg[1]])[-5:]
                log(msg[1])
            elif msg[0] == "stage":
                done += STAGE_SHARE.get(msg[1], 0.0)
                figures = msg[2]
                status = f"{msg[1]}: {figures.get('seconds', 0):.1f}s " + ", ".join(
                    f"{k}={v}" for k, v in figures.items() if k != "seconds" and not isinstance(v, (list, dict)))
                progress(event_id, msg[1], min(0.95, done), status)
            else:
                final = (msg[0], msg[1])
        proc.join()
        receive.close()
        with self._lock:
            self._proc = None
        if final is None:
            final = ("crashed", f"the worker ended (exit code {proc.exitcode}) without a result"
                     + (f"; its last lines: {' | '.join(last_lines)}" if last_lines else ""))
        return final

    def stop(self) -> None:
        """Stop the running job, or the next one if none runs (SIGTERM: the learn step ends
        ``interrupted``); its event stays pending."""
        with self._lock:
            self._stopping = True
            if self._proc is not None and self._proc.is_alive():
                self._proc.terminate()


def _report_record(report: LearnReport) -> dict:
    return asdict(report)
