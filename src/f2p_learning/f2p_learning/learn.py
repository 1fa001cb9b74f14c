"""Learn from one failure: a saved failure event to a validated checkpoint (paper 000 §4-5).

``learn(LearnConfig) -> LearnReport``; the command line ``f2p-learn`` builds the config from its
arguments. Stages (each logged with its time, all recorded in ``learn_report.json``):

1. **load** the event (``f2p_failure.events``, integrity-checked) and the checkpoint that
   failed (a warning if its version differs from the event's ``model_version``);
2. **classify** (§4, :mod:`f2p_learning.classify`): Real2Sim replay of φ_F from O_F; a
   sim-to-real gap stops here: simulated data would teach the wrong effect;
3. **infer** the M (state, action) pairs with the chosen method (:mod:`f2p_learning.pairs`:
   ``fail2progress`` SVGD on states, eq. 5, then on actions, eq. 7; or a §6 baseline); a
   diverging inference (NaN/inf, e.g. from a NaN checkpoint) stops here; particles held at the
   edge of the feasible set are counted and reported;
4. **simulate** the pairs into D+ (:mod:`f2p_learning.dplus`);
5. **fine-tune** Γ on all of D+ by the :class:`~f2p_training.train.FineTuneRecipe` (paper: 200
   epochs, Adam 1e-4, the last epoch's weights; with replay of original data and object
   relabelling). D+ transitions flagged unstable are kept (only unseen segments are skipped):
   around a failure they are informative — e.g. a loaded bin left resting tilted on a table
   edge, penetrating it by ~2 cm, is exactly the "did not reach the other table" example the
   model lacks (measured: 10 of 20 D+ transitions of a transport failure);
6. **validate** on a held-out regression set: relation-detection micro F1 and next-step
   accuracy of the child against the model deployed on the robot (``reference_checkpoint``,
   else the parent) and absolute floors. A child worse than that model by more than
   ``regression_tolerance``, or below a floor, is written but marked ``deployable: false``.

**A full disk** ends the step with outcome ``no_space`` and its report: checked before any work
(``min_free_bytes`` free in the out-dir), and on ENOSPC at any stage, after removing what the
run wrote so far (D+, the provisional child) so that the report fits.

Output folder: ``d_plus/`` (the dataset), ``particles.npz``, ``model.pt`` (+ .sha256;
``training_data.lineage`` holds the parent version, event id, method, D+ digest) and
``learn_report.json``, written (atomically) whatever the outcome, bad input included. Fine-tuning
writes ``model.provisional.pt``; only the gate's verdict turns it into ``model.pt`` (with
``metrics.deployable``), so a run killed in between leaves nothing that looks validated, and the
planner admits no child without ``deployable: true``. An out-dir holding an earlier run is
refused (``fresh`` discards it), except one whose run was interrupted, which is run again.
Exit codes of ``f2p-learn``: :data:`EXIT_CODES` (SIGTERM: ``interrupted``, 5, with a report).
"""
from __future__ import annotations

import argparse
import errno
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from f2p_common.files import write_atomic
from f2p_datasets.perceived import DEPTH_BACKENDS, SENSOR_NOISE, SIMULATOR, PerceivedObserver, PerceptionParams
from f2p_failure.events import FailureEventError, load_event
from f2p_sim.config import load_world_config
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import NoiseModel
from f2p_skill_effect.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from f2p_training.train import FineTuneRecipe, train
from f2p_training.transitions import load_transitions

from .classify import classify_failure
from .dplus import NoTrainingDataError, simulate_pairs
from .gate import regression_gate
from .pairs import METHODS, infer_pairs
from .svgd import SVGDDivergedError

#: ``f2p-learn`` exit codes per outcome (0: learned).
EXIT_CODES = {"learned": 0, "bad_input": 2, "no_training_data": 2, "no_space": 2, "sim_to_real_gap": 3,
              "inference_diverged": 4, "interrupted": 5}
#: The stages of a learn step, in order (``LearnConfig.on_stage``).
STAGES = ("load", "classify", "infer", "simulate", "fine_tune", "validate")
#: What a run writes in its out_dir (``fresh`` removes exactly these).
OUTPUTS = ("learn_report.json", "model.pt", "model.pt.sha256", "model.pt.sig", "model.provisional.pt",
           "model.provisional.pt.sha256", "particles.npz", "d_plus")


class LearnInputError(ValueError):
    """The event or checkpoint cannot be used (missing, corrupt, tampered with), the out-dir
    cannot be written or holds an earlier run, or the failure cannot be replayed in simulation.
    Nothing was learned; the message says why."""


class LearnInterrupted(BaseException):
    """Raised into a running learn step to stop it (``f2p-learn`` does on SIGTERM); the step
    writes an ``interrupted`` report and leaves no validated-looking child. A BaseException,
    like KeyboardInterrupt, so that no ``except Exception`` on the way swallows or rewraps it."""


def prepare_out_dir(out: Path, fresh: bool) -> None:
    """Create ``out``; LearnInputError when it cannot be written or holds a finished or failed
    earlier run (unless ``fresh``: then that run's outputs are removed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise LearnInputError(f"cannot write to the out-dir {out}: {e.strerror or e}") from None
    report = out / "learn_report.json"
    earlier = None
    if report.is_file():
        try:
            earlier = json.loads(report.read_text()).get("outcome", "?")
        except (OSError, ValueError):
            earlier = "unreadable"
    elif any((out / name).exists() for name in OUTPUTS):
        earlier = "no report"
    if earlier is None or earlier == "interrupted":
        return
    if not fresh:
        raise LearnInputError(f"the out-dir {out} holds an earlier run (outcome: {earlier}); choose another out-dir "
                              "or discard it (--fresh)")
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@dataclass
class LearnConfig:
    """event: the failure event file (.f2pevent); checkpoint: the model that failed (the
    parent); out_dir: where D+, the child and the report go; method: one of
    :data:`f2p_learning.pairs.METHODS`; particles: M (paper A.5: 20); svgd_steps: SVGD /
    gradient steps; fine_tune: how the child is fine-tuned; replay_data: original data mixed
    into fine-tuning; regression_data / regression_tolerance: the gate (no data: the child is
    never deployable), which compares the child with ``reference_checkpoint`` (the model deployed
    on the robot; None: the parent) and with the absolute floors ``min_detection_f1`` /
    ``min_next_step_accuracy``; min_free_bytes: the least free space in out_dir to start (D+ and
    a child take ~50 MB; fine-tuning's replay more); skip_classification: learn without the sim replay check; world_config:
    the simulated world (None: the installed one) and its ``layout`` (None: the file's own;
    ``real_scale`` for a robot's events: its workspace holds real furniture); fresh: discard
    an earlier run in out_dir; perception: how D+ observes its simulated scenes — ``simulator``
    (the simulator's own segments) or the robot's depth backend (``geometric``, ``convex``) on the
    camera's organised cloud with ``sensor_noise`` (depth, point m; dropout), so the child is
    fine-tuned on the robot's own kind of observation (``f2p_datasets.perceived``; issue 45 part 4);
    log: progress lines (None: silent); on_stage: called with (stage, figures) as each stage ends
    (:data:`STAGES`). A learner's job settings are one LearnConfig whose event, checkpoint and
    out_dir are filled per job (``f2p_learning.jobs``)."""

    event: str | Path = ""
    checkpoint: str | Path = ""
    out_dir: str | Path = ""
    method: str = "fail2progress"
    particles: int = 20
    svgd_steps: int = 60
    fine_tune: FineTuneRecipe = field(default_factory=FineTuneRecipe)
    replay_data: Sequence[str | Path] = ()
    regression_data: Sequence[str | Path] = ()
    regression_tolerance: float = 0.02
    reference_checkpoint: str | Path | None = None
    min_detection_f1: float = 0.85
    min_next_step_accuracy: float = 0.85
    min_free_bytes: int = 512 * 2 ** 20
    skip_classification: bool = False
    seed: int = 0
    world_config: str | Path | None = None
    layout: str | None = None
    fresh: bool = False
    perception: str = SIMULATOR
    sensor_noise: tuple[float, float, float] = SENSOR_NOISE
    log: Callable[[str], None] | None = None
    on_stage: Callable[[str, dict], None] | None = None

    def validate(self) -> None:
        missing = [name for name in ("event", "checkpoint", "out_dir") if not str(getattr(self, name))]
        if missing:
            raise ValueError(f"a learn step needs {', '.join(missing)}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.particles < 2:
            raise ValueError("particles must be >= 2 (SVGD needs a kernel over several particles)")
        if self.svgd_steps < 1:
            raise ValueError("svgd_steps must be >= 1")
        if not 0 <= self.regression_tolerance < math.inf:
            raise ValueError("regression_tolerance must be a finite number >= 0")
        if not (0.0 <= self.min_detection_f1 <= 1.0 and 0.0 <= self.min_next_step_accuracy <= 1.0):
            raise ValueError("min_detection_f1 and min_next_step_accuracy must lie in [0, 1]")
        if self.perception != SIMULATOR:
            PerceptionParams(self.perception).validate()
            NoiseModel(*self.sensor_noise)
        # the fine-tuning settings are checked now, not after minutes of inference and simulation
        self.fine_tune.train_config(["d_plus"], "model.pt", self.checkpoint, points=1, seed=self.seed,
                                    replay_data=self.replay_data, keep_unstable=True).validate()


@dataclass
class LearnReport:
    """What one learn step did. ``outcome``: ``learned`` (``checkpoint`` written, ``deployable``
    says whether it passed the regression gate), ``sim_to_real_gap``, ``inference_diverged``,
    ``no_training_data``, ``bad_input`` or ``interrupted``; ``result`` says the same in words;
    ``stages``: seconds and figures per stage."""

    outcome: str
    result: str
    method: str
    event_id: str
    parent_version: str
    skill: str
    mismatches: list[dict]
    config: dict
    stages: dict = field(default_factory=dict)
    deployable: bool = False
    checkpoint: str | None = None
    child_version: str | None = None
    child_sha256: str | None = None
    regression_gate: dict | None = None
    lineage: dict | None = None
    total_seconds: float = 0.0

    def write(self, path: Path) -> None:
        """Write the report as JSON, durably and atomically."""
        write_atomic(path, json.dumps(asdict(self), indent=1, default=float) + "\n")


def learn(cfg: LearnConfig) -> LearnReport:
    """Learn from ``cfg.event`` (module docstring). LearnInputError for unusable inputs (after
    writing a ``bad_input`` report where the out-dir allows)."""
    cfg.validate()
    out = Path(cfg.out_dir)
    prepare_out_dir(out, cfg.fresh)
    report = LearnReport("learned", "learned", cfg.method, "", "", "", [], _config_record(cfg))
    t_all = time.perf_counter()

    def finish(outcome: str, result: str) -> LearnReport:
        report.outcome, report.result = outcome, result
        report.total_seconds = round(time.perf_counter() - t_all, 3)
        report.write(out / "learn_report.json")
        return report

    free = shutil.disk_usage(out).free
    if free < cfg.min_free_bytes:
        return finish("no_space", f"only {free / 2**20:.0f} MiB free in {out}, fewer than min_free_bytes "
                                  f"({cfg.min_free_bytes / 2**20:.0f} MiB): nothing was learned; free space and run again")
    try:
        return _learn(cfg, out, report, finish)
    except LearnInputError as e:
        finish("bad_input", f"bad input: {e}")
        raise
    except LearnInterrupted:
        (out / "model.provisional.pt").unlink(missing_ok=True)
        return finish("interrupted", "interrupted before the end: run the same command again to start over")
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        for name in ("d_plus", "particles.npz", "model.provisional.pt", "model.provisional.pt.sha256"):
            path = out / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return finish("no_space", f"the disk filled up while learning ({e}): what the run wrote was removed; free "
                                  "space and run again")


def _learn(cfg: LearnConfig, out: Path, report: LearnReport, finish) -> LearnReport:
    log = cfg.log or (lambda _msg: None)
    t0 = time.perf_counter()
    try:
        event = load_event(cfg.event)
        parent = load_checkpoint(cfg.checkpoint)
        model = model_from_checkpoint(parent)
    except (FailureEventError, CheckpointError) as e:
        raise LearnInputError(str(e)) from None
    report.event_id, report.parent_version, report.skill = event.event_id, parent.version, event.skill
    report.mismatches = event.mismatches
    if event.model_version != parent.version:
        log(f"[f2p-learn] warning: event {event.event_id} was recorded with model {event.model_version}, "
            f"learning on checkpoint {parent.version}")
    n_points = int(parent.training_data.get("points_per_object", 128))
    try:
        world = load_world_config(cfg.world_config, cfg.layout)
    except ValueError as e:
        raise LearnInputError(str(e)) from None
    backend = MujocoBackend(world)

    def stage(name: str, started: float, **info) -> None:
        report.stages[name] = {"seconds": round(time.perf_counter() - started, 3), **info}
        log(f"[f2p-learn] {name}: {time.perf_counter() - started:.1f}s "
            + ", ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, (list, dict))))
        if cfg.on_stage is not None:
            cfg.on_stage(name, report.stages[name])

    stage("load", t0, event=event.event_id, parent=parent.version, segments=event.num_segments)

    t0 = time.perf_counter()
    if cfg.skip_classification:
        stage("classify", t0, category="skipped")
    else:
        try:
            c = classify_failure(event, backend)
        except Exception as e:  # a scene Real2Sim cannot build is reported, not a crash
            raise LearnInputError(f"cannot replay the failure in simulation: {e}") from e
        stage("classify", t0, category=c.category, agreeing=c.agreeing, disagreeing=c.disagreeing)
        if c.category != "incorrect_prediction":
            log("[f2p-learn] the simulator does not reproduce the observed outcome (sim-to-real gap): stopping")
            return finish("sim_to_real_gap", "sim_to_real_gap: not learnable from simulated data")

    t0 = time.perf_counter()
    try:
        pairs = infer_pairs(cfg.method, model, event, n_points, (world["workspace"]["lower"], world["workspace"]["upper"]),
                            particles=cfg.particles, steps=cfg.svgd_steps, seed=cfg.seed)
    except SVGDDivergedError as e:   # NaN/inf log-density or particles: nothing to simulate, nothing to learn
        log(f"[f2p-learn] {cfg.method} inference diverged: {e}")
        return finish("inference_diverged", f"inference diverged: {e}")
    np.savez(out / "particles.npz", offsets=pairs.offsets, actions=pairs.actions, states=pairs.state_particles,
             state_objective=pairs.state_objective, action_objective=pairs.action_objective)
    at_bound = pairs.at_bound()
    stage("infer", t0, optimisation_seconds=round(pairs.seconds, 3), particles=cfg.particles,
          state_objective_mean=float(np.mean(pairs.state_objective)),
          action_objective_mean=float(np.mean(pairs.action_objective)),
          states_at_bound=at_bound.get("states"), actions_infeasible=at_bound.get("actions"),
          rejection={k: v for k, v in pairs.history.items() if k.endswith("_rejection")} or None)
    if any(at_bound.values()):
        log(f"[f2p-learn] warning: at the last SVGD step {at_bound.get('states')} state and {at_bound.get('actions')} "
            f"action particles of {cfg.particles} sit outside the feasible set (their D+ scenes may not build)")

    t0 = time.perf_counter()
    try:
        observer = None if cfg.perception == SIMULATOR else \
            PerceivedObserver(PerceptionParams(cfg.perception), NoiseModel(*cfg.sensor_noise))
        d_plus = simulate_pairs(event, pairs, backend, out / "d_plus", seed=cfg.seed, observer=observer)
    except NoTrainingDataError as e:
        log(f"[f2p-learn] no D+: {e}")
        return finish("no_training_data", f"no D+: {e}")
    stage("simulate", t0, transitions=d_plus.built, usable=d_plus.usable, skipped=len(d_plus.skipped),
          flagged=d_plus.manifest["flagged"], skipped_reasons=d_plus.skipped)

    t0 = time.perf_counter()
    provisional, child_path = out / "model.provisional.pt", out / "model.pt"
    report.lineage = {"parent_version": parent.version, "event_id": event.event_id, "method": cfg.method,
                      "d_plus": str(d_plus.folder), "d_plus_shard_sha256": d_plus.manifest["shards"][0]["sha256"],
                      "particles": cfg.particles}
    trained = train(cfg.fine_tune.train_config([d_plus.folder], provisional, cfg.checkpoint, points=n_points,
                                               seed=cfg.seed, replay_data=cfg.replay_data, keep_unstable=True,
                                               lineage=report.lineage, log=cfg.log))
    stage("fine_tune", t0, epochs=cfg.fine_tune.epochs)

    t0 = time.perf_counter()
    child = load_checkpoint(provisional)
    if cfg.regression_data:
        data = load_transitions(cfg.regression_data, n_points, parent.config.max_objects, cfg.seed)
        reference = model
        if cfg.reference_checkpoint and Path(cfg.reference_checkpoint) != Path(cfg.checkpoint):
            try:
                reference = model_from_checkpoint(load_checkpoint(cfg.reference_checkpoint, parent.config))
            except CheckpointError as e:
                raise LearnInputError(f"the deployed model to compare with: {e}") from None
        gate = regression_gate(reference, model_from_checkpoint(child), data, cfg.regression_tolerance,
                               {"detection_f1": cfg.min_detection_f1, "next_step_accuracy": cfg.min_next_step_accuracy})
    else:
        gate = {"tolerance": cfg.regression_tolerance, "deployable": False, "reason": "no regression data: not validated"}
    child.metrics = {**child.metrics, "regression_gate": gate, "deployable": gate["deployable"]}
    report.child_sha256 = save_checkpoint(child_path, child)          # the gate's verdict is in the child
    for leftover in (provisional, provisional.with_name(provisional.name + ".sha256")):
        leftover.unlink(missing_ok=True)
    stage("validate", t0, deployable=gate["deployable"], worst_drop=gate.get("worst_drop"))
    report.checkpoint, report.child_version = str(child_path), trained.version
    report.deployable, report.regression_gate = gate["deployable"], gate
    finish("learned", "learned")
    log(f"[f2p-learn] wrote {child_path} version {trained.version} (parent {parent.version}), "
        f"deployable={gate['deployable']}, total {report.total_seconds:.1f}s")
    return report


def _config_record(cfg: LearnConfig) -> dict:
    """The settings of a learn step as JSON (recorded in its report)."""
    return {"event": str(cfg.event), "checkpoint": str(cfg.checkpoint), "method": cfg.method,
            "particles": cfg.particles, "svgd_steps": cfg.svgd_steps, "fine_tune": asdict(cfg.fine_tune),
            "replay_data": [str(d) for d in cfg.replay_data], "regression_data": [str(d) for d in cfg.regression_data],
            "regression_tolerance": cfg.regression_tolerance, "skip_classification": cfg.skip_classification,
            "seed": cfg.seed}


# ---------------------------------------------------------------------------- command line
def config_from_args(argv=None) -> LearnConfig:
    """The :class:`LearnConfig` of an ``f2p-learn`` command line (defaults: LearnConfig's)."""
    d, r = LearnConfig(event="", checkpoint="", out_dir=""), FineTuneRecipe()
    p = argparse.ArgumentParser(prog="f2p-learn", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--event", required=True, help="failure event file (.f2pevent)")
    p.add_argument("--checkpoint", required=True, help="the checkpoint that failed (the parent)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--method", default=d.method, choices=METHODS)
    p.add_argument("--particles", type=int, default=d.particles, help="M (paper: 20)")
    p.add_argument("--svgd-steps", type=int, default=d.svgd_steps)
    p.add_argument("--epochs", type=int, default=r.epochs, help="fine-tuning epochs (paper: 200)")
    p.add_argument("--lr", type=float, default=r.lr, help="fine-tuning learning rate (paper: 1e-4)")
    p.add_argument("--batch-size", type=int, default=r.batch_size, help="fine-tuning batch size")
    p.add_argument("--replay-data", nargs="*", default=[], help="original data mixed into fine-tuning")
    p.add_argument("--replay-fraction", type=float, default=r.replay_fraction)
    p.add_argument("--anchor-weight", type=float, default=r.anchor_weight,
                   help="keep the parent's placement predictions over the skill's parameter box while fine-tuning "
                        "(0 = off, the paper's fine-tuning)")
    p.add_argument("--keep-unseen-after", action="store_true",
                   help="fine-tune on D+ transitions in which an object falls out of view too")
    p.add_argument("--no-relabel-objects", dest="relabel_objects", action="store_false",
                   help="fine-tune on D+ in its recorded object order only (default: random object relabellings)")
    p.add_argument("--regression-data", nargs="*", default=[], help="held-out data for the regression gate")
    p.add_argument("--regression-tolerance", type=float, default=d.regression_tolerance,
                   help="largest allowed drop of detection F1 or next-step accuracy")
    p.add_argument("--reference-checkpoint", default=None,
                   help="the model deployed on the robot, which the gate compares the child with (default: the parent)")
    p.add_argument("--min-detection-f1", type=float, default=d.min_detection_f1,
                   help="floor of the child's detection F1 on the regression data")
    p.add_argument("--min-next-step-accuracy", type=float, default=d.min_next_step_accuracy,
                   help="floor of the child's next-step accuracy on the regression data")
    p.add_argument("--skip-classification", action="store_true", help="learn even without a sim replay check")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--layout", default=None, help="the world config's layout to replay the failure in "
                                                  "(default: the file's own; real_scale for a robot's events)")
    p.add_argument("--perception", default=d.perception, choices=(SIMULATOR, *DEPTH_BACKENDS),
                   help="how D+ observes its scenes: the simulator's segments or the robot's depth backend")
    p.add_argument("--fresh", action="store_true", help="discard an earlier run in --out-dir (refused otherwise)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    cfg = LearnConfig(
        event=a.event, checkpoint=a.checkpoint, out_dir=a.out_dir, method=a.method, particles=a.particles,
        svgd_steps=a.svgd_steps,
        fine_tune=FineTuneRecipe(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, replay_fraction=a.replay_fraction,
                                 relabel_objects=a.relabel_objects, anchor_weight=a.anchor_weight,
                                 keep_unseen_after=a.keep_unseen_after),
        replay_data=a.replay_data, regression_data=a.regression_data, regression_tolerance=a.regression_tolerance,
        reference_checkpoint=a.reference_checkpoint, min_detection_f1=a.min_detection_f1,
        min_next_step_accuracy=a.min_next_step_accuracy, skip_classification=a.skip_classification, seed=a.seed, layout=a.layout, fresh=a.fresh,
        perception=a.perception,
        log=None if a.quiet else (lambda msg: print(msg, flush=True)))
    try:
        cfg.validate()
    except ValueError as e:
        p.error(str(e))
    return cfg


def _interrupt(signum, _frame):
    raise LearnInterrupted(f"signal {signum}")


def main(argv=None) -> int:
    import signal
    cfg = config_from_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)          # stop cleanly: a report, no half-made child
    try:
        report = learn(cfg)
    except LearnInputError as e:
        print(f"f2p-learn: error: {e}", file=sys.stderr)
        return EXIT_CODES["bad_input"]
    if report.outcome != "learned":
        print(f"f2p-learn: {report.result}", file=sys.stderr)
    return EXIT_CODES[report.outcome]


if __name__ == "__main__":
    sys.exit(main())
