"""Planner over a skill-effect model Γ (paper 000 §3 and A.11.2 "Planning Details").

Objective: maximise p(G | O_0, φ_{1:H}, a_{1:H}) for a goal G = g_1 ∧ … ∧ g_M, taken as the
product of the goal relations' predicted probabilities after the last step (relations
are independent Bernoulli outputs of Γ).

Continuous parameters: shooting (K samples uniform in each skill's vocabulary box, all
rolled out in ONE batch through Γ, the initial observation encoded once and expanded),
then refined by the cross-entropy method (CEM, paper 000 §3 refs [50, 52, 53]): a few
iterations that refit a per-step diagonal Gaussian to the elite fraction, sampled
parameters clipped to the box. The best sample ever seen is returned.

Skeletons: given, or enumerated over the skill library up to a horizon, pruned by the
detected unary relations of O_0 (each skill's ``target_requirement``: pick_place/push need a
movable target, drawer skills a drawer), each optimised as above; the most probable plan wins. ``targets`` narrows the
enumeration to the objects a goal is about, each acted on at most once per skeleton
(the search then grows with the number of goal objects, not with the scene), and
``PlannerConfig.skills`` to a task's skill library.

Refused plans (``PlannerConfig.avoid``): plans a verifier refused for this scene (paper 002
§IV-D: Guardian's verdict sends the planner back to work). The search proposes none of them
again, nor any plan of the same skeleton whose parameters lie within ``avoid_radius`` of one
(Euclidean distance of the parameters normalised by each skill's box width, over all steps):
shooting and CEM score such samples -inf, so the next best region of the objective wins.

Stable placements (``PlannerConfig.placement``, from the scene's boxes: ``f2p_planner``): Γ
reads a container bridging the gap between two tables as on the far one, as the simulator's
relations do, but a robot's grasp and a camera's boxes are off by centimetres and a tilted
container is neither safe nor legible. ``placement(skeleton, a)`` gives the metres by which
each sample's put-down centres miss a stable spot (:data:`~f2p_common.vocabulary.PLACEMENT_MARGIN`
inside what they rest on); a sample that misses scores ``log p(G) - 1000 (1 + miss / 1 cm)``,
below every stable one, and the nearest to stable among them when none is.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from f2p_common.interfaces import GoalLiteral, Plan, check_literal
from f2p_common.vocabulary import (BINARY_RELATIONS, MOVABLE_CLASSES, PARAM_DIM, SKILLS, UNARY_RELATIONS,
                                   padded_parameter_box, skill as skill_spec, skill_index)

from .model import Observation, RelationProbs, SkillBatch, SkillEffectModel


@dataclass
class PlannerConfig:
    samples: int = 256          # K shooting samples per CEM iteration
    iterations: int = 3         # CEM iterations after the initial uniform shooting
    elite_fraction: float = 0.1
    min_std: float = 0.02       # fraction of the box width; keeps CEM from collapsing early
    horizon: int = 2            # for enumerated skeletons
    max_skeletons: int = 64
    require_threshold: float = 0.5   # detected unary prob for a target to qualify
    skills: tuple[str, ...] | None = None   # skill library for enumeration (None: all)
    seed: int = 0
    avoid: tuple = ()           # refused plans: (skeleton ((skill, target), ...), parameters (H, dim)) pairs
    avoid_radius: float = 0.1   # normalised parameter distance around a refused plan that is not proposed
    # (skeleton, a (K, H, PARAM_DIM)) -> (K,) m by which the placements miss a stable spot; None: any
    placement: Callable[[Sequence[tuple[str, int]], torch.Tensor], torch.Tensor] | None = None


def goal_log_probability(rel: RelationProbs, goal: Sequence[GoalLiteral]) -> torch.Tensor:
    """(B,) Σ log p(g_i): log of the product of the goal relation probabilities."""
    out = torch.zeros(rel.unary.shape[0], device=rel.unary.device)
    n = rel.unary.shape[1]
    for lit in goal:
        pred, subj, obj = check_literal(lit, n)
        out = out + torch.log(rel.prob(pred, subj, obj).clamp_min(1e-12))
    return out


def unmet_goal_targets(goal: Sequence[GoalLiteral], unary: np.ndarray, binary: np.ndarray,
                       labels: Sequence[str], threshold: float = 0.5) -> list[int]:
    """The movable objects (by class label) named by the goal literals that do not hold in the
    relation state (``unary`` (N, 3), ``binary`` (N, N, 9): 0/1 or probabilities, a literal
    holds at p >= ``threshold``): what a plan still has to act on, sorted. Empty: the goal holds."""
    out = set()
    for lit in goal:
        pred, subj, obj = check_literal(lit, len(labels))
        p = unary[subj, UNARY_RELATIONS.index(pred)] if obj is None else binary[subj, obj, BINARY_RELATIONS.index(pred)]
        if p < threshold:
            out.update(i for i in (subj, obj) if i is not None and labels[i] in MOVABLE_CLASSES)
    return sorted(out)


def _validate(obs: Observation, goal, skeleton) -> list[GoalLiteral]:
    if obs.points.shape[0] != 1:
        raise ValueError("plan from a single observation (batch size 1)")
    n = int(obs.mask.sum())
    goal = [check_literal(lit, n) for lit in goal]
    for name, tgt in skeleton or []:
        skill_spec(name)
        if not 0 <= int(tgt) < n:
            raise ValueError(f"skeleton step ({name}, {tgt}) names object {tgt}; the scene has {n}")
    return goal


@torch.no_grad()
def optimise_skeleton(model: SkillEffectModel, latent: torch.Tensor, mask: torch.Tensor,
                      goal: Sequence[GoalLiteral], skeleton: Sequence[tuple[str, int]],
                      cfg: PlannerConfig, gen: torch.Generator) -> tuple[np.ndarray, float, int]:
    """Shooting + CEM over a_{1:H} for one skeleton; (best params (H, PARAM_DIM), best log p, samples)."""
    h, k = len(skeleton), cfg.samples
    boxes = [padded_parameter_box(n) for n, _ in skeleton]      # padded dimensions stay at 0
    lo = torch.tensor([b[0] for b in boxes]).reshape(h, PARAM_DIM)
    hi = torch.tensor([b[1] for b in boxes]).reshape(h, PARAM_DIM)
    width = hi - lo
    skill_idx = [skill_index(n) for n, _ in skeleton]
    x = latent.expand(k, -1, -1)
    m = mask.expand(k, -1)

    refused = [torch.tensor(np.stack([np.pad(np.asarray(p, np.float32), (0, PARAM_DIM - len(p))) for p in params]))
               for sk, params in cfg.avoid
               if [(str(n), int(t)) for n, t in sk] == [(str(n), int(t)) for n, t in skeleton]]
    scale = torch.where(width > 0, width, torch.ones_like(width))   # padded dimensions: 0 either way

    def evaluate(a: torch.Tensor) -> torch.Tensor:   # a (K, H, PARAM_DIM) → (K,) log p(G)
        z = x
        for i in range(h):
            z = model.step(z, m, SkillBatch(torch.full((k,), skill_idx[i], dtype=torch.long),
                                            torch.full((k,), int(skeleton[i][1]), dtype=torch.long), a[:, i]))
        v = goal_log_probability(model.detect(z, m), goal)
        if cfg.placement is not None:                  # unstable placements below every stable one
            miss = cfg.placement(skeleton, a)
            v = torch.where(miss > 0, v - 1000.0 * (1.0 + miss / 0.01), v)
        for ref in refused:                            # a refused plan's neighbourhood is not proposed
            near = ((a - ref) / scale).flatten(1).norm(dim=1) < cfg.avoid_radius
            v = v.masked_fill(near, -float("inf"))
        return v

    a = lo + width * torch.rand(k, h, PARAM_DIM, generator=gen)
    best_a, best_v, n_eval = None, -float("inf"), 0
    n_elite = max(2, int(round(cfg.elite_fraction * k)))
    for it in range(cfg.iterations + 1):
        v = evaluate(a)
        n_eval += k
        j = int(v.argmax())
        if float(v[j]) > best_v:
            best_v, best_a = float(v[j]), a[j].clone()
        if it == cfg.iterations:
            break
        elite = a[v.topk(n_elite).indices]
        mu, std = elite.mean(0), elite.std(0).maximum(cfg.min_std * width)
        a = torch.minimum(torch.maximum(mu + std * torch.randn(k, h, PARAM_DIM, generator=gen), lo), hi)
        if best_a is not None:
            a[0] = best_a      # elitism: the incumbent stays in the population
    return (None if best_a is None else best_a.numpy()), best_v, n_eval


def enumerate_skeletons(detected: RelationProbs, n_objects: int, cfg: PlannerConfig,
                        targets: Sequence[int] | None = None) -> list[list[tuple[str, int]]]:
    """Skeletons of length 1..horizon whose targets meet each skill's ``target_requirement``,
    shortest first. With ``targets``, steps act only on those objects and each at most once per
    skeleton."""
    names = [n for n in SKILLS if cfg.skills is None or n in cfg.skills]
    allowed = range(n_objects) if targets is None else sorted({int(t) for t in targets})
    steps = []
    for name in names:
        req = UNARY_RELATIONS.index(SKILLS[name].target_requirement)
        for t in allowed:
            if float(detected.unary[0, t, req]) >= cfg.require_threshold:
                steps.append((name, t))
    out: list[list[tuple[str, int]]] = []
    for hzn in range(1, cfg.horizon + 1):
        for sk in itertools.product(steps, repeat=hzn):
            if targets is not None and len({t for _, t in sk}) < hzn:
                continue
            out.append(list(sk))
            if len(out) >= cfg.max_skeletons:
                return out
    return out


@torch.no_grad()
def plan(model: SkillEffectModel, obs: Observation, goal: Sequence[GoalLiteral],
         skeleton: Sequence[tuple[str, int]] | None = None, cfg: PlannerConfig = PlannerConfig(),
         targets: Sequence[int] | None = None) -> Plan:
    """Best plan for ``goal`` from ``obs`` (B = 1); see the module docstring. The plan's
    ``object_ids``, ``plan_id`` and ``model_version`` are left for the caller to name."""
    t0 = time.perf_counter()
    if not goal:
        raise ValueError("empty goal")
    goal = _validate(obs, goal, skeleton)
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    latent = model.encode(obs)
    t_enc = time.perf_counter()
    n = int(obs.mask.sum())
    if skeleton is not None:
        candidates = [list(skeleton)]
    else:
        candidates = enumerate_skeletons(model.detect(latent, obs.mask), n, cfg, targets)
        if not candidates:
            raise ValueError("no skeleton: no detected target satisfies any skill's requirement")
    best = None
    total = 0
    for sk in candidates:
        a, v, ne = optimise_skeleton(model, latent, obs.mask, goal, sk, cfg, gen)
        total += ne
        if a is not None and (best is None or v > best[2]):
            best = (sk, a, v)
    if best is None:
        raise ValueError(f"every plan found lies within {cfg.avoid_radius} of one of the {len(cfg.avoid)} refused plans")
    t_opt = time.perf_counter()
    sk, a, _ = best
    # Re-roll the winner alone to report the relations after every step.
    rels = model.rollout(obs, [SkillBatch(torch.tensor([skill_index(nm)]), torch.tensor([int(t)]),
                                          torch.from_numpy(a[i:i + 1])) for i, (nm, t) in enumerate(sk)],
                         latent=latent)
    p_goal = float(torch.exp(goal_log_probability(rels[-1], goal))[0])
    # float32 rounding can put a clipped value a hair outside its float64 box edge: clip again.
    params = [[float(np.clip(float(x), lo, hi)) for x, lo, hi in zip(a[i, :skill_spec(nm).dim], skill_spec(nm).low, skill_spec(nm).high)]
              for i, (nm, _) in enumerate(sk)]
    t1 = time.perf_counter()
    return Plan([(nm, int(t)) for nm, t in sk], params,
                [{"unary": r.unary[0, :n].numpy(), "binary": r.binary[0, :n, :n].numpy()} for r in rels],
                p_goal, goal=goal, timing={"encode_s": t_enc - t0, "optimise_s": t_opt - t_enc, "total_s": t1 - t0,
                                           "skeletons": float(len(candidates))}, evaluated_samples=total)
