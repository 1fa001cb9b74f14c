"""AFIL's data from the simulator (issue 33; paper 003 §3.2, §4), as FailCoT is Guardian's.

All through :class:`f2p_sim.control.SkillEnv`:

* success demonstrations: the demonstrator (:mod:`f2p_sim.demonstrator`, the scripted
  primitives in closed loop) on randomised scenes of every skill task
  (:mod:`f2p_datasets.skill_tasks`); a failed demonstration is kept with its result, for the
  caller to drop;
* failure rollouts, generated online: a policy (the success-only one) run on fresh training
  scenes; every trajectory whose skill failed is kept, with why (:class:`SkillResult`);
* failure-corrected trajectories: from states of a failed rollout (chunk boundaries, restored
  exactly: physics, what the jaws hold, the skill's bookkeeping) the demonstrator replans and
  finishes the skill; what it did is kept when it succeeds (the paper's "Success + Failure
  Correction").

A trajectory is per control step: the policy features of the observation before the step and
the action taken (``f2p_training.afil.chunk_dataset`` makes training pairs of them).
:func:`evaluate` measures a policy's success rate on a task's scenes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from f2p_afil.controller import AfilController
from f2p_afil.observation import EXECUTE, FEATURE_DIM, SkillObservation, features
from f2p_afil.policy import DAGPolicy, Guidance
from f2p_sim.config import load_world_config
from f2p_sim.control import ControlConfig, SkillEnv, SkillResult
from f2p_sim.demonstrator import demonstrate
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_datasets.skill_tasks import SkillTask, make_skill_task, stack_params

Act = Callable[[SkillObservation], np.ndarray]


@dataclass
class Trajectory:
    """One skill executed step by step: ``feats`` (T, FEATURE_DIM), ``actions`` (T, 4)."""

    task: str
    seed: int
    skill: str
    feats: np.ndarray
    actions: np.ndarray
    result: SkillResult | None = None


@dataclass
class TaskRun:
    """A task's skills in sequence (stopping at the first failure)."""

    task: SkillTask
    results: list[SkillResult] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)
    corrections: list[Trajectory] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return len(self.results) == len(self.task.steps) and all(r.success for r in self.results)

    @property
    def failure(self) -> str | None:
        bad = [r for r in self.results if not r.success]
        return None if not bad else bad[0].failure


def demonstrator_act(obs: SkillObservation) -> np.ndarray:
    return demonstrate(obs)[None]


def _run_skill(env: SkillEnv, act: Act, task: SkillTask, skill: str, record: bool,
               snapshots: list | None = None) -> Trajectory:
    feats, actions = [], []
    while not env.done:
        if snapshots is not None:
            snapshots.append(env.snapshot())
        obs = env.observe()
        rows = act(obs)
        for row in rows:
            if env.done:
                break
            if record:
                feats.append(features(obs))
                actions.append(np.asarray(row, dtype=np.float32))
            env.step(row[None])
            if record and len(rows) > 1:
                obs = env.observe()
    return Trajectory(task.name, task.seed, skill, np.asarray(feats, dtype=np.float32).reshape(-1, FEATURE_DIM),
                      np.asarray(actions, dtype=np.float32).reshape(-1, 4))


def run_task(backend: MujocoBackend, task: SkillTask, act: Act, rng: np.random.Generator,
             config: ControlConfig = ControlConfig(), record: bool = False, corrections: int = 0) -> TaskRun:
    """Execute ``task``'s skills with ``act``, stopping at the first failed skill. ``record``:
    keep each skill's trajectory; ``corrections``: on a failed skill, the demonstrator replans
    from up to that many of its chunk-start states (latest first) and its successful
    finishes are kept as failure-corrected trajectories."""
    backend.load(task.scene)
    env = SkillEnv(backend, config)
    names = [s.name for s in backend.segments]
    run = TaskRun(task)
    for step in task.steps:
        target = names.index(step.target)
        params = step.params
        if step.onto is not None:
            st = backend.segment_state()
            o = names.index(step.onto)
            params = stack_params(st.box_lower[target], st.box_upper[target], st.box_lower[o], st.box_upper[o])
        env.begin(step.skill, target, params, rng)
        snaps: list | None = [] if corrections else None
        traj = _run_skill(env, act, task, step.skill, record, snaps)
        result = env.outcome()
        traj.result = result
        run.results.append(result)
        if record:
            run.trajectories.append(traj)
        if not result.success:
            if corrections and snaps:
                after = backend.get_state(), backend.grip_state()
                picks = np.unique(np.linspace(len(snaps) // 3, len(snaps) - 1, corrections).astype(int))[::-1]
                for k in picks:
                    env.restore(snaps[k])
                    fix = _run_skill(env, demonstrator_act, task, step.skill, True)
                    fix.result = env.outcome()
                    if fix.result.success:
                        run.corrections.append(fix)
                backend.set_state(after[0])
                backend.set_grip_state(after[1])
            break
    return run


@dataclass(frozen=True)
class DataConfig:
    """Which scenes make data: ``tasks`` (f2p_datasets.skill_tasks), seeds ``[seed_start, seed_start + n)``."""

    tasks: tuple[str, ...] = ("pick_place", "push", "open_drawer", "carry_stack", "push_stack")
    n: int = 200
    seed_start: int = 0
    corrections: int = 2


def collect(data: DataConfig, act: Act | None = None, progress: Callable[[str], None] | None = None,
            record: bool = True) -> list[TaskRun]:
    """Run ``act`` (default: the demonstrator) on ``data``'s scenes."""
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    runs = []
    t0 = time.monotonic()
    for name in data.tasks:
        for seed in range(data.seed_start, data.seed_start + data.n):
            task = make_skill_task(name, seed, cfg)
            rng = np.random.default_rng(np.random.SeedSequence([seed, 33]))
            if isinstance(act, AfilController):
                act.reseed(seed)
            runs.append(run_task(backend, task, act or demonstrator_act, rng, record=record,
                                 corrections=data.corrections if act is not None else 0))
        if progress:
            ok = np.mean([r.success for r in runs if r.task.name == name])
            progress(f"{name}: {data.n} runs, success {ok:.2f} ({time.monotonic() - t0:.0f} s)")
    return runs


def evaluate(policy: DAGPolicy, guidance: Guidance, task_name: str, seeds: range, domain: str = "train",
             config: ControlConfig = ControlConfig()) -> dict:
    """Success rate of ``policy`` sampled with ``guidance`` on ``task_name`` scenes of ``seeds``
    (one fixed sampling seed per scene): {"n", "success", "failures": {kind: count}}."""
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    ctl = AfilController(policy, guidance, execute=EXECUTE)
    ok, failures = 0, {}
    for seed in seeds:
        task = make_skill_task(task_name, seed, cfg, domain)
        ctl.reseed(seed)
        run = run_task(backend, task, ctl, np.random.default_rng(np.random.SeedSequence([seed, 33])), config)
        ok += run.success
        if not run.success:
            failures[run.failure] = failures.get(run.failure, 0) + 1
    return {"n": len(seeds), "success": ok / max(1, len(seeds)), "failures": failures}
