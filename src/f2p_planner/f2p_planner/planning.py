"""Planning a task from a segmented scene with the active model (paper 000 §3): the work behind
the planner node's ``PlanTask`` service, without ROS.

Given a scene (objects with points), goal literals over its objects and optionally a skeleton:
without a skeleton, the model's own detection head decides which goal literals hold already
(p >= 0.5 on O_0); the search then acts on the movable objects of the others, each at most
once, horizon their number (at most ``max_horizon``), over the planner's skill library — the
paper's planning on what the robot sees, not on ground truth. When every literal already
holds, the plan has no step. The result is a :class:`~f2p_common.interfaces.Plan` named with the
scene's object ids and the model's version. ``refused``: plans a verifier refused for this scene;
the search proposes none within ``avoid_radius`` of them (:mod:`f2p_skill_effect.planner`).
Placements are stable where the scene's boxes allow (:func:`placement_miss`): the search puts a
target down with its centre well inside a table, a shelf or a container, never over a gap or
past an edge, before it weighs what Γ predicts.
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from f2p_common.interfaces import GoalLiteral, Plan, SegmentedScene, check_literal
from f2p_common.vocabulary import PLACEMENT_MARGIN, skill as skill_spec
from f2p_skill_effect.model import Observation
from f2p_skill_effect.planner import PlannerConfig, goal_log_probability, plan, unmet_goal_targets

from .model_slot import LoadedModel


class PlanningError(ValueError):
    """A request that cannot be planned (bad goal, skeleton or scene, no plan); says why."""


class RequestTooLarge(PlanningError):
    """A request beyond the planner's :class:`RequestLimits`."""


@dataclass(frozen=True)
class RequestLimits:
    """The most one request may ask for (issue 43: ``num_samples`` 2^32-1 tried to allocate 51 GB
    and a 300-step skeleton blocked planning for 37 s): shooting ``samples``, search
    ``horizon``, ``skeleton_steps``, ``goal_literals``, ``refused_plans``."""

    samples: int = 2048
    horizon: int = 6
    skeleton_steps: int = 8
    goal_literals: int = 32
    refused_plans: int = 64

    def check(self, samples: int, horizon: int, skeleton_steps: int, goal_literals: int, refused_plans: int) -> None:
        """RequestTooLarge naming every value over its limit."""
        over = [f"{name} {got} > {limit}" for name, got, limit in (
            ("num_samples", samples, self.samples), ("max_horizon", horizon, self.horizon),
            ("skeleton steps", skeleton_steps, self.skeleton_steps), ("goal literals", goal_literals, self.goal_literals),
            ("refused plans", refused_plans, self.refused_plans)) if got > limit]
        if over:
            raise RequestTooLarge(f"the request exceeds the planner's limits: {', '.join(over)}")


@dataclass(frozen=True)
class PlanningSettings:
    """samples: K shooting samples per CEM round; iterations: CEM rounds; max_horizon: longest
    searched plan; max_skeletons: skeletons tried at most; skills: the skill library searched
    (() = all); points: per object (0 = the checkpoint's own); seed: of the search; avoid_radius:
    normalised parameter distance around a refused plan that is not proposed again."""

    samples: int = 256
    iterations: int = 3
    max_horizon: int = 3
    max_skeletons: int = 64
    skills: tuple[str, ...] = ()
    points: int = 0
    seed: int = 0
    avoid_radius: float = 0.1

    def __post_init__(self):
        if self.samples < 2 or self.iterations < 0 or self.max_horizon < 1 or self.max_skeletons < 1:
            raise ValueError("samples must be >= 2, iterations >= 0, max_horizon and max_skeletons >= 1")
        if not self.avoid_radius >= 0.0:
            raise ValueError(f"avoid_radius must be >= 0, got {self.avoid_radius}")
        for name in self.skills:
            skill_spec(name)


def plan_task(loaded: LoadedModel, scene: SegmentedScene, goal: Sequence[GoalLiteral],
              skeleton: Sequence[tuple[str, int]] | None, settings: PlanningSettings,
              refused: Sequence[Plan] = ()) -> Plan:
    """The best plan for ``goal`` from ``scene`` with ``loaded``'s model (module docstring)."""
    t0 = time.perf_counter()
    n = len(scene.objects)
    if n == 0:
        raise PlanningError("the scene has no objects")
    if not goal:
        raise PlanningError("the goal is empty")
    empty = [o.id for o in scene.objects if len(o.points) == 0]
    if empty:
        raise PlanningError(f"objects {empty} have no points in the scene: nothing to plan from")
    model = loaded.model
    if n > model.cfg.max_objects:
        raise PlanningError(f"{n} objects exceed the model's {model.cfg.max_objects}")
    try:
        goal = [check_literal(lit, n) for lit in goal]
        for name, target in skeleton or []:
            skill_spec(name)
            if not 0 <= int(target) < n:
                raise ValueError(f"skeleton step ({name}, {target}) names object {target}; the scene has {n}")
    except ValueError as e:
        raise PlanningError(str(e)) from None
    points = settings.points or int(loaded.checkpoint.training_data.get("points_per_object", 128))
    # The scene's own objects, not padded to the model's max_objects: the encoder's attention
    # masks padding out, so the plan is the same, and padding a 5-object scene to 16 slots made
    # planning 5-7x slower (transport-3: 1.95 s -> 0.42 s on 2 threads, the same plan).
    obs = Observation.from_clouds(scene.clouds, points, seed=settings.seed)
    cfg = PlannerConfig(samples=settings.samples, iterations=settings.iterations, max_skeletons=settings.max_skeletons,
                        skills=settings.skills or None, seed=settings.seed, avoid_radius=settings.avoid_radius,
                        avoid=tuple(_in_scene(r, scene, k) for k, r in enumerate(refused)),
                        placement=placement_miss(scene))
    targets = None
    with torch.no_grad():
        if not skeleton:
            detected = model.detect(model.encode(obs), obs.mask)
            unary, binary = detected.unary[0, :n].numpy(), detected.binary[0, :n, :n].numpy()
            targets = unmet_goal_targets(goal, unary, binary, scene.labels)
            if not targets:            # the model sees the goal holding already: nothing to do
                p = float(math.exp(goal_log_probability(detected, goal)[0]))
                return _named(Plan([], [], [], p, goal=goal, timing={"total_s": time.perf_counter() - t0}), scene,
                              loaded)
            cfg = replace(cfg, horizon=min(len(targets), settings.max_horizon))
        try:
            result = plan(model, obs, goal, skeleton=list(skeleton) if skeleton else None, cfg=cfg, targets=targets)
        except ValueError as e:
            raise PlanningError(str(e)) from None
    return _named(result, scene, loaded)


def _footprints(scene: SegmentedScene) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) (N, 2): each object's axis-aligned footprint in the scene's frame (its
    oriented box turned into the frame's axes; its points' extent where it has no box)."""
    lower, upper = np.zeros((len(scene.objects), 2)), np.zeros((len(scene.objects), 2))
    for i, o in enumerate(scene.objects):
        if o.box is not None:
            lower[i], upper[i] = (b[:2] for b in o.box.bounds())
        else:
            lower[i], upper[i] = o.points[:, :2].min(axis=0), o.points[:, :2].max(axis=0)
    return lower, upper


def placement_miss(scene: SegmentedScene):
    """The planner's stable-placement term (:mod:`f2p_skill_effect.planner`): for samples ``a``
    (K, H, PARAM_DIM) of a skeleton, the metres (K,) by which its pick_place steps put the
    target's centre (its box's, moved by (dx, dy)) short of a stable spot over another object of
    the scene — a table, a shelf, a container: inside its footprint by a quarter of the target's
    extent plus :data:`PLACEMENT_MARGIN` (a quarter of the support's extent at most) — summed
    over steps; 0 for a plan that puts everything down stably. What lies within the target's own
    footprint (its contents, carried along) is no support for it."""
    lower, upper = _footprints(scene)
    centre, extent = 0.5 * (lower + upper), upper - lower

    def miss(skeleton, a: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0])
        for i, (name, t) in enumerate(skeleton):
            if name != "pick_place":
                continue
            others = [j for j in range(len(centre)) if j != t and not (          # not what it holds
                np.all(lower[j] >= lower[t] - 0.01) and np.all(upper[j] <= upper[t] + 0.01))]
            if not others:
                continue
            inset = np.minimum(PLACEMENT_MARGIN + 0.25 * extent[t], 0.25 * extent[others])       # (J, 2)
            lo_in = torch.from_numpy(lower[others] + inset).float()
            hi_in = torch.from_numpy(upper[others] - inset).float()
            c = torch.from_numpy(centre[t]).float() + a[:, i, :2]                            # (K, 2)
            short = (lo_in - c[:, None]).clamp(min=0) + (c[:, None] - hi_in).clamp(min=0)
            total += short.norm(dim=2).min(dim=1).values
        return total
    return miss


def _named(result: Plan, scene: SegmentedScene, loaded: LoadedModel) -> Plan:
    result.object_ids, result.plan_id, result.model_version = scene.object_ids, str(uuid.uuid4()), loaded.version
    result.frame_id, result.stamp_ns = scene.frame_id, scene.stamp_ns
    return result


def _in_scene(refused: Plan, scene: SegmentedScene, k: int) -> tuple:
    """(skeleton over ``scene``'s object indices, parameters) of a refused plan named by object ids."""
    index = {o: i for i, o in enumerate(scene.object_ids)}
    steps = []
    for (name, target), params in zip(refused.skeleton, refused.parameters):
        oid = refused.object_ids[target] if refused.object_ids else None
        if oid not in index:
            raise PlanningError(f"refused plan {k} names object {oid!r}, which is not in the scene")
        spec = skill_spec(name)
        if len(params) != spec.dim or not all(math.isfinite(float(x)) for x in params):
            raise PlanningError(f"refused plan {k}: {name} needs {spec.dim} finite parameters, got {list(params)}")
        steps.append(((name, index[oid]), [float(x) for x in params]))
    return tuple(s for s, _ in steps), [p for _, p in steps]
