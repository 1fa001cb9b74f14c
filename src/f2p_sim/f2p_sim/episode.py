"""One task attempt on the simulated robot: observe, plan with Γ, execute, check each step.

This is the on-robot loop of paper 000 §3-4 with the MuJoCo world standing in for the robot:

1. O_0: the camera's segmented partial-view cloud (``f2p_sim.observation.observe``); R̂_0:
   the relations of the scene. In simulation R̂ comes from the simulator's state
   (an ideal relation detector: the same A.9 definitions the robot's detector implements).
2. Plan (``f2p_skill_effect.planner``): the goal literals over segment indices; the skeleton
   is searched over the task's skill library (``vocabulary.TASK_SKILLS``) acting on the goal's
   objects that are not yet where the goal wants them (:func:`plan_targets`), each at most
   once, horizon = their number (at most ``max_horizon``).
3. Execute step k, observe O_k and R̂_k, compare with R'_k (``f2p_failure.detection``). A
   mismatch stops the attempt and yields the failure event F = (O_{k-1}, R̂_{k-1}, φ_k(a_k),
   R̂_k) with the prediction, the model version and the task as context.
4. After the last step the attempt succeeds when every goal literal holds. A detected failure
   ends the attempt as a failure (the robot stops: its model no longer describes the world),
   unless ``replans`` > 0 (the §6 Replanning baseline): then the robot plans again from the
   current observation with the same model, and succeeds if the goal eventually holds.

Outcomes: ``success``, ``failure_detected`` (an event), ``goal_not_reached`` (the plan ran as
predicted but the planner's best plan did not reach the goal), ``unobservable`` (a segment
got no points in O_0: nothing to plan from), ``no_plan``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from f2p_common.interfaces import Plan
from f2p_common.vocabulary import TASK_SKILLS
from f2p_failure.detection import find_mismatches
from f2p_failure.events import FailureEvent
from f2p_skill_effect.model import Observation, SkillEffectModel
from f2p_skill_effect.planner import PlannerConfig, plan, unmet_goal_targets

from .observation import Camera, NoiseModel, observe
from .tasks import Task


@dataclass
class TrialConfig:
    camera: str = "front"
    n_points: int = 128                   # points per object fed to Γ (the checkpoint's)
    samples: int = 256
    iterations: int = 3
    max_horizon: int = 3
    max_skeletons: int = 64
    noise: NoiseModel | None = None
    robot_id: str = "sim"
    replans: int = 0                      # after a detected failure, plan again from the current state (§6 "Replanning")


@dataclass
class TrialResult:
    task: str
    n_objects: int
    seed: int
    outcome: str
    plan: Plan | None = None
    steps_executed: int = 0
    failure: FailureEvent | None = None
    goal_probability: float = 0.0
    plan_seconds: float = 0.0
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.outcome == "success"


def goal_literals(task: Task, names: list[str]) -> list[tuple[str, int, int | None]]:
    idx = {n: i for i, n in enumerate(names)}
    if any(not lit.value for lit in task.goal):
        raise ValueError("negated goal literals are not supported by the planner objective")
    return [(lit.predicate, idx[lit.subject], None if lit.object is None else idx[lit.object]) for lit in task.goal]


def plan_targets(task: Task, relations, names: list[str], classes: list[str]) -> list[int]:
    """The movable objects of the goal literals that do not hold yet (in the simulator's truth)."""
    return unmet_goal_targets(goal_literals(task, names), relations.unary, relations.binary, classes)


def _clouds(obs) -> list[np.ndarray]:
    return [obs.segment_cloud(i).astype(np.float32) for i in range(obs.counts.shape[0])]


def run_trial(model: SkillEffectModel, model_version: str, task: Task, backend, cfg: TrialConfig,
              seed: int = 0, plan_id: str | None = None) -> TrialResult:
    """Attempt ``task`` once on ``backend`` (loaded here) with model Γ; see the module docstring."""
    rng = np.random.default_rng(seed)
    backend.load(task.scene)
    segs = backend.segments
    names, classes = [s.name for s in segs], [s.cls for s in segs]
    camera = Camera.from_config(backend.cfg, cfg.camera)
    res = TrialResult(task.kind, task.n_objects, task.seed, "no_plan")
    obs = observe(backend, camera, noise=cfg.noise, rng=rng)
    if (obs.counts == 0).any():
        res.outcome, res.detail = "unobservable", f"no points on {[names[i] for i in np.flatnonzero(obs.counts == 0)]}"
        return res
    rel = backend.relations()
    goal = goal_literals(task, names)
    clouds = _clouds(obs)
    plan_id = plan_id or f"{task.kind}-{task.n_objects}-{task.seed}-{seed}"
    failed = False
    for attempt in range(cfg.replans + 1):
        targets = plan_targets(task, rel, names, classes)
        if not targets:            # (after a replan) the world already satisfies the goal
            failed = False
            break
        pcfg = PlannerConfig(samples=cfg.samples, iterations=cfg.iterations, horizon=min(len(targets), cfg.max_horizon),
                             max_skeletons=cfg.max_skeletons, skills=TASK_SKILLS[task.kind], seed=seed + attempt)
        o = Observation.from_clouds(clouds, cfg.n_points, seed=seed, max_objects=model.cfg.max_objects)
        t0 = time.perf_counter()
        try:
            p = plan(model, o, goal, cfg=pcfg, targets=targets)
        except ValueError as e:
            res.detail = str(e)
            return res
        p.object_ids, p.plan_id, p.model_version = list(names), plan_id, model_version
        res.plan, res.goal_probability = p, p.goal_probability
        res.plan_seconds += time.perf_counter() - t0
        failed = False
        for k, ((skill, target), params) in enumerate(zip(p.skeleton, p.parameters)):
            backend.execute_skill(skill, target, params)
            obs_k = observe(backend, camera, noise=cfg.noise, rng=rng)
            rel_k = backend.relations()
            res.steps_executed += 1
            mism = find_mismatches(p.step_relations[k], rel_k.unary, rel_k.binary, goal)
            seen_all = not (obs_k.counts == 0).any()
            if mism:
                failed = True
                if res.failure is None:   # the first failure is the one the robot records
                    res.failure = FailureEvent.from_plan_step(
                        p, k, robot_id=cfg.robot_id, labels=classes, before=clouds,
                        relations_before=(rel.unary, rel.binary), observed_after=(rel_k.unary, rel_k.binary),
                        after=_clouds(obs_k) if seen_all else [], mismatches=mism,
                        context={"task": task.kind, "n_objects": task.n_objects, "task_seed": task.seed,
                                 "goal": [str(l) for l in task.goal], "camera": cfg.camera, "trial_seed": seed,
                                 "plan": [[s_, int(t_), [float(v) for v in a_]] for (s_, t_), a_ in zip(p.skeleton, p.parameters)]})
            if not seen_all and (failed or k + 1 < len(p.skeleton)):
                res.outcome = "failure_detected" if failed else "unobservable"
                res.detail = f"a segment left the view after step {k}"
                return res
            clouds, rel = _clouds(obs_k), rel_k
            if failed:
                break
        if not failed:
            break
    if failed:
        # The robot stops at a detected failure (its predictions no longer describe the world),
        # whatever the world looks like: success means the plan worked as the model predicted.
        res.outcome = "failure_detected"
        return res
    return _finish(res, task, backend)


def _finish(res: TrialResult, task: Task, backend) -> TrialResult:
    res.outcome = "success" if task.success(backend) else "goal_not_reached"
    return res
