"""SVGD inference over the failed skill's parameters (paper 000 §5.2 eq. 6-7, A.13.2), and the
action draws of the §6 baselines.

States fixed (:mod:`f2p_learning.states`), a particle is the failed skill's parameters a ∈ the
skill's box, in box-normalised coordinates u ∈ [-1, 1]^d (``SkillSpec.to_unit``, so that metres
and radians share one kernel; SVGD moves v = atanh(u), see :func:`infer_actions`). The target is
the generalised-Bayes posterior with β = 1 and the loss = minus the predictive entropy of Γ
over the failure relations R'_F (the literals the model mispredicted, or, if none were
recorded, every relation of the skill's target):

    log p(a_i) = Σ_{r ∈ R'_F} H(Γ(r | ξ(s_i)O_F, φ_F, a_i))  +  log P(a_i | s_i)

so actions go where the model is unsure what φ_F does in the failure's neighbourhood — the
expected information gain of §5. P(a | s) is the paper's uniform prior over actions,
restricted, like the state prior, to *feasible* ones (:class:`ActionPrior`): the skill
leaves its target over a support surface of O_F (a table, shelf, cabinet or drawer
footprint), so a placement or push never throws the object off the furniture, out of view
(measured with the plain box prior: 12 of 20 D+ transitions unusable). Outside the feasible
set a quadratic wall (``WALL_WEIGHT`` per m²) makes the prior differentiable. Particles start
as draws from the prior, so the set covers the whole feasible box (both tables, every
placement height) before the entropy moves them: a Gaussian around the failed action, as
first built, kept D+ within ±0.24 m of a_F and the fine-tuned model never saw the
contents of a cup carried to the other table (organize: 0 of 60 trials).

``kernel=False`` is the "Gradient" baseline (independent gradient ascent);
:func:`rejection_actions` is the "Sampling" baseline's action step.
"""
from __future__ import annotations

import torch

from f2p_common.vocabulary import BINARY_RELATIONS, PARAM_DIM, UNARY_RELATIONS, denormalise, skill, skill_index
from f2p_failure.events import FailureEvent
from f2p_skill_effect.model import Observation, SkillBatch, SkillEffectModel

from .states import WALL_WEIGHT, FailureScene
from .svgd import SVGDResult, run_svgd

#: A feasible action leaves the target's centre this far (m) inside a support footprint, at
#: most: the inset is the target's half size, so it rests wholly on the support.
SUPPORT_INSET_MAX = 0.15
#: Candidates per particle when drawing feasible actions from the prior by rejection.
PRIOR_DRAWS = 256
#: Candidate actions per state in rejection sampling (the Sampling baseline).
ACTION_DRAWS = 512


def failure_literals(event: FailureEvent) -> list[tuple[str, int, int | None]]:
    """R'_F as (predicate, subject, object|None): the mispredicted literals, else every
    relation of the failed skill's target (unary, and binary with every other segment)."""
    if event.mismatches:
        return [(m["predicate"], int(m["subject"]), None if m.get("object") is None else int(m["object"]))
                for m in event.mismatches]
    t, n = event.target, event.num_segments
    lits = [(u, t, None) for u in UNARY_RELATIONS]
    for j in range(n):
        if j != t:
            lits += [(b, t, j) for b in BINARY_RELATIONS] + [(b, j, t) for b in BINARY_RELATIONS]
    return lits


def _bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * torch.log(p) + (1 - p) * torch.log1p(-p))


class ActionPrior:
    """P(a | s_i): uniform over the feasible actions of the failed skill (module docstring).

    Feasible: pick_place puts the target's centre at c_i + (dx, dy), push moves it to
    c_i + distance·(cos, sin)(direction) (c_i: its centre in ξ(s_i)O_F); that point must lie in
    a support footprint inset by the target's half size (at most ``SUPPORT_INSET_MAX``).
    Drawer skills have no such constraint (their box is the prior). Everything is in
    box-normalised units u (``SkillSpec.to_unit``)."""

    def __init__(self, scene: FailureScene, states: torch.Tensor, event: FailureEvent):
        spec = skill(event.skill)
        self.skill, self.dim = event.skill, spec.dim
        self.lo = torch.tensor(spec.low, dtype=torch.float32)
        self.hi = torch.tensor(spec.high, dtype=torch.float32)
        with torch.no_grad():
            tgt = scene.transform(states)[:, event.target, :, :2]                  # (M, P, 2)
        tlo, thi = tgt.min(1).values, tgt.max(1).values
        self.center = 0.5 * (tlo + thi)                                             # (M, 2)
        sup = scene.supports                                                         # (K, 2, 2)
        inset = torch.minimum(0.5 * (thi - tlo), torch.tensor(SUPPORT_INSET_MAX))[:, None]   # (M, 1, 2)
        half_sup = 0.5 * (sup[:, 1] - sup[:, 0])[None] - 1e-3                           # (1, K, 2)
        inset = torch.minimum(inset, half_sup.clamp_min(0.0))
        self.sup_lo, self.sup_hi = sup[None, :, 0] + inset, sup[None, :, 1] - inset     # (M, K, 2)
        self.constrained = event.skill in ("pick_place", "push") and sup.shape[0] > 0

    def actions(self, u: torch.Tensor) -> torch.Tensor:
        return denormalise(u, self.lo, self.hi)

    def end_point(self, u: torch.Tensor) -> torch.Tensor:
        """(M, 2) where the action leaves the target's centre (pick_place / push)."""
        a = self.actions(u)
        if self.skill == "pick_place":
            return self.center + a[:, :2]
        return self.center + a[:, 1:2] * torch.stack([torch.cos(a[:, 0]), torch.sin(a[:, 0])], -1)

    def violation(self, u: torch.Tensor) -> torch.Tensor:
        """(M,) distance (m) from the end point to the nearest feasible footprint; 0 if feasible."""
        if not self.constrained:
            return torch.zeros(u.shape[0])
        p = self.end_point(u)[:, None]                                               # (M, 1, 2)
        out = torch.relu(self.sup_lo - p) + torch.relu(p - self.sup_hi)              # (M, K, 2)
        return (out.pow(2).sum(-1) + 1e-12).sqrt().min(1).values

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return -WALL_WEIGHT * self.violation(u).pow(2)

    def feasible(self, u: torch.Tensor) -> torch.Tensor:
        return self.violation(u) <= 1e-4

    def sample(self, per_particle: int, gen: torch.Generator) -> torch.Tensor:
        """(per_particle, M, d) uniform draws in the box, infeasible ones replaced by feasible
        draws of the same particle (rejection sampling with ``PRIOR_DRAWS`` candidates); a
        particle with no feasible candidate keeps its box draws (the wall then pulls them in)."""
        m = self.center.shape[0]
        n = max(per_particle, PRIOR_DRAWS)
        cand = 2 * torch.rand(n, m, self.dim, generator=gen) - 1
        ok = torch.stack([self.feasible(c) for c in cand])                         # (n, M)
        out = cand[:per_particle].clone()
        for i in range(m):
            good = torch.nonzero(ok[:, i]).flatten()
            if len(good) == 0:
                continue
            pick = good[torch.randint(len(good), (per_particle,), generator=gen)] if len(good) < per_particle \
                else good[:per_particle]
            out[:, i] = cand[pick, i]
        return out


def action_log_prob(model: SkillEffectModel, scene: FailureScene, states: torch.Tensor, event: FailureEvent,
                    prior: ActionPrior | None = None):
    """The eq. 6 target over box-normalised actions u (M, d), states fixed."""
    prior = prior or ActionPrior(scene, states, event)
    lits = failure_literals(event)
    with torch.no_grad():
        clouds = scene.transform(states)
        mask = torch.ones(states.shape[0], clouds.shape[1], dtype=torch.bool)
        latent = model.encode(Observation(clouds, mask))
    skill_idx = skill_index(event.skill)
    m = states.shape[0]

    def log_prob(u: torch.Tensor) -> torch.Tensor:
        params = torch.zeros(m, PARAM_DIM)
        params[:, :prior.dim] = prior.actions(u)
        rel = model.detect(model.step(latent, mask, SkillBatch(torch.full((m,), skill_idx), torch.full((m,), event.target), params)), mask)
        h = torch.zeros(m)
        for pred, subj, obj in lits:
            h = h + _bernoulli_entropy(rel.prob(pred, subj, obj))
        return h + prior.log_prob(u)
    return log_prob


#: Action particles move in v = atanh(u); |v| is capped here (|u| < 0.9999) so it stays finite.
V_MAX = 5.0


def infer_actions(model: SkillEffectModel, scene: FailureScene, states: torch.Tensor, event: FailureEvent,
                  steps: int = 60, lr: float = 0.05, kernel: bool = True, seed: int = 0,
                  progress=None) -> SVGDResult:
    """Eq. 7: one action particle per state particle, started from draws of the feasible prior
    :class:`ActionPrior`; returns them in box-normalised units u (``SkillSpec.from_unit``).

    The box is handled by a change of variables, u = tanh(v), with SVGD run on
    log p(v) = log p(u(v)) + Σ log(1 - u²): the same distribution over u, on an unbounded
    space. (Clamping u instead, the kernel's repulsion piles particles up on the box faces:
    measured, 8 of 20 at the largest dy.) ``kernel=False`` (the Gradient baseline) maximises
    log p(u) itself: the Jacobian term belongs to a density, not to an objective, and would
    pull every independent particle towards the box centre."""
    gen = torch.Generator().manual_seed(seed + 1)
    prior = ActionPrior(scene, states, event)
    target = action_log_prob(model, scene, states, event, prior)

    def log_prob_v(v: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(v)
        return target(u) + (torch.log1p(-u.pow(2) + 1e-6).sum(-1) if kernel else 0.0)

    v0 = torch.atanh(prior.sample(1, gen)[0].clamp(-0.999, 0.999))
    model.eval()
    res = run_svgd(log_prob_v, v0, steps=steps, lr=lr, kernel=kernel, project=lambda v: v.clamp(-V_MAX, V_MAX),
                   at_bound=lambda v: ~prior.feasible(torch.tanh(v)), progress=progress)
    u = torch.tanh(res.particles)
    with torch.no_grad():
        res.log_prob = target(u)
    res.particles = u
    return res


def rejection_actions(prior: ActionPrior, objective, h_max: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One action per state, accepted with probability exp(h − h_max) among ``ACTION_DRAWS``
    draws of the feasible prior (the first accepted; none: the highest h). (M, d), (M,) h, accepted."""
    with torch.no_grad():
        u = prior.sample(ACTION_DRAWS, gen)                                     # (C, M, d)
        h = torch.stack([objective(c) for c in u])                              # (C, M)
        accept = torch.rand(h.shape, generator=gen) < torch.exp(h - h_max)
        first = torch.where(accept.any(0), accept.float().argmax(0), h.argmax(0))
    cols = torch.arange(u.shape[1])
    return u[first, cols], h[first, cols], int(accept.any(0).sum())


