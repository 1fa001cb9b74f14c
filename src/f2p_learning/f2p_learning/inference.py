"""SVGD state and action inference around a failure event (paper 000 §5.2, A.13.1-2).

**States** (eq. 4-5). A particle s ∈ R^{3·n} holds a planar offset (dx, dy, dyaw) for each of
the n movable segments of O_F; ξ(s)O_F moves each movable segment's cloud by its offset (yaw
about the segment centroid; furniture stays). The target density is

    log p(s) = Σ_{r ∈ R_F} log Γ(r | ξ(s)O_F)  +  log P(s)

where the first sum runs over every unary relation of every segment and every binary
relation of every ordered pair, with the value observed in R_F (the relations hold *and*
the absent ones stay absent: "the transformed point clouds match the relations in the
failure case"), and the prior P(s) is uniform over feasible states, made differentiable as
penalties: each offset within ``OFFSET_BOX`` (beyond it, a quadratic wall), segment
centroids inside the world config's workspace, contents of a container (``inside`` in R_F)
within its footprint less ``CONTAINMENT_MARGIN``, and no interpenetration — the overlap
volume of two segments' boxes, for every pair that is not inside one another in R_F, costs
``OVERLAP_WEIGHT`` per cube-root metre. Particles start at O_F's own state plus a small
spread (``init_std``), since O_F satisfies R_F by construction.

**Actions** (eq. 6-7). States fixed, a particle is the failed skill's parameters a ∈ the
skill's box, in box-normalised coordinates u ∈ [-1, 1]^d (so that metres and radians share
one kernel; SVGD moves v = atanh(u), see :func:`infer_actions`). The target is the
generalised-Bayes posterior with β = 1 and the loss = minus the predictive entropy of Γ over
the failure relations R'_F (the literals the model mispredicted, or, if none were recorded,
every relation of the skill's target):

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

``kernel=False`` turns both into the "Gradient" baseline (independent gradient ascent).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS
from f2p_relations.relations import MOVABLE_CLASSES
from f2p_skill_effect.model import PARAM_DIM, Observation, SkillBatch, SkillEffectModel

from f2p_failure.events import FailureEvent

from .svgd import SVGDResult, run_svgd

#: Per movable segment: |dx|, |dy| (m) and |dyaw| (rad) the state prior allows.
OFFSET_BOX = (0.15, 0.15, float(np.pi / 6))
#: Penalty weight of the prior's walls (per unit² outside the box / workspace).
WALL_WEIGHT = 1000.0
#: Penalty per cube-root m of overlap between two segment boxes (no interpenetration).
OVERLAP_WEIGHT = 200.0
#: Overlap (m per axis) tolerated before the penalty: touching boxes of partial views overlap a little.
OVERLAP_TOL = 0.005
#: A feasible action leaves the target's centre this far (m) inside a support footprint, at
#: most: the inset is the target's half size, so it rests wholly on the support.
SUPPORT_INSET_MAX = 0.15
#: Candidates per particle when drawing feasible actions from the prior by rejection.
PRIOR_DRAWS = 256
#: An item inside a container keeps this much (m) from the container's outer box in x and y
#: (about a wall's thickness), so Real2Sim can build it without touching the wall.
CONTAINMENT_MARGIN = 0.012


@dataclass
class FailureScene:
    """O_F resampled for Γ, with what the inference needs (built once per event)."""

    points: torch.Tensor          # (S, P, 3)
    movable: list[int]            # segments that particles move
    rel_unary: torch.Tensor       # (S, 3) float 0/1, R_F
    rel_binary: torch.Tensor      # (S, S, 9)
    inside_pairs: torch.Tensor    # (S, S) bool: i inside j or j inside i in R_F (may overlap)
    workspace: tuple[np.ndarray, np.ndarray]
    contents: list[tuple[int, int]] = field(default_factory=list)   # (item, container) inside in R_F
    supports: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2, 2))  # (K, lo/hi, xy) furniture footprints

    @staticmethod
    def from_event(event: FailureEvent, n_points: int, workspace, seed: int = 0) -> "FailureScene":
        event.validate()
        obs = Observation.from_clouds(event.observation_before, n_points, seed=seed)
        ru = torch.from_numpy(np.asarray(event.relations_before_unary, np.float32))
        rb = torch.from_numpy(np.asarray(event.relations_before_binary, np.float32))
        ins = rb[:, :, BINARY_RELATIONS.index("inside")] > 0.5
        movable = [i for i, l in enumerate(event.segment_labels) if l in MOVABLE_CLASSES]
        if not movable:
            raise ValueError(f"event {event.event_id}: no movable segment to vary")
        lo, hi = (np.asarray(v, np.float64) for v in workspace)
        contents = [(int(i), int(j)) for i, j in torch.nonzero(ins).tolist()]
        # Support footprints from the full clouds (the resampled ones may miss a table's edge).
        fixed = [np.asarray(c, np.float32).reshape(-1, 3)[:, :2] for i, c in enumerate(event.observation_before)
                 if i not in movable]
        supports = torch.tensor(np.array([[c.min(0), c.max(0)] for c in fixed]).reshape(-1, 2, 2))
        return FailureScene(obs.points[0], movable, ru, rb, ins | ins.t(), (lo, hi), contents, supports)

    @property
    def dim(self) -> int:
        return 3 * len(self.movable)

    def transform(self, s: torch.Tensor) -> torch.Tensor:
        """ξ(s)O_F: (M, 3n) particles → (M, S, P, 3) clouds (differentiable in s)."""
        m = s.shape[0]
        pts = self.points[None].expand(m, -1, -1, -1)
        off = s.reshape(m, len(self.movable), 3)
        mov = pts[:, self.movable]                                   # (M, n, P, 3)
        c = mov.mean(2, keepdim=True)
        rel = mov - c
        cs, sn = torch.cos(off[..., 2])[..., None], torch.sin(off[..., 2])[..., None]
        x = c[..., 0] + cs * rel[..., 0] - sn * rel[..., 1] + off[..., 0:1]
        y = c[..., 1] + sn * rel[..., 0] + cs * rel[..., 1] + off[..., 1:2]
        moved = torch.stack([x, y, mov[..., 2]], -1)
        out = pts.clone()
        out[:, self.movable] = moved
        return out

    def violations(self, s: torch.Tensor, clouds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M,) squared wall distances (offset box, workspace, containment) and (M,) summed
        cube roots of the overlap volumes of pairs that may not interpenetrate; both 0 exactly
        inside the feasible set."""
        m = s.shape[0]
        off = s.reshape(m, len(self.movable), 3)
        box = torch.tensor(OFFSET_BOX, dtype=s.dtype)
        wall = torch.relu(off.abs() - box).pow(2).sum((1, 2))
        cen = clouds.mean(2)                                           # (M, S, 3)
        lo = torch.as_tensor(self.workspace[0], dtype=s.dtype)
        hi = torch.as_tensor(self.workspace[1], dtype=s.dtype)
        wall = wall + (torch.relu(lo - cen) + torch.relu(cen - hi)).pow(2).sum((1, 2))
        blo, bhi = clouds.min(2).values, clouds.max(2).values          # (M, S, 3)
        ov = torch.relu(torch.minimum(bhi[:, :, None], bhi[:, None]) - torch.maximum(blo[:, :, None], blo[:, None]) - OVERLAP_TOL)
        vol = ov.prod(-1).clamp_min(0)                                  # (M, S, S)
        n = clouds.shape[1]
        pair = ~torch.eye(n, dtype=torch.bool) & ~self.inside_pairs
        mov = torch.zeros(n, dtype=torch.bool)
        mov[self.movable] = True
        pair = pair & (mov[:, None] | mov[None, :])                     # furniture pairs never move
        # the cube root keeps a gradient for small overlaps; exactly 0 when nothing overlaps
        overlap = (torch.where(vol > 0, (vol + 1e-12).pow(1.0 / 3.0), torch.zeros_like(vol)) * pair).sum((1, 2)) / 2
        # Contents stay within their container's footprint (inside pairs may not overlap-check:
        # pushed into a wall, Real2Sim rejects the scene — measured: half of D+ lost without this).
        if self.contents:
            ci, cj = zip(*self.contents)
            ci, cj = list(ci), list(cj)
            out_lo = torch.relu(blo[:, cj, :2] + CONTAINMENT_MARGIN - blo[:, ci, :2])
            out_hi = torch.relu(bhi[:, ci, :2] - bhi[:, cj, :2] + CONTAINMENT_MARGIN)
            wall = wall + (out_lo.pow(2) + out_hi.pow(2)).sum((1, 2))
        return wall, overlap

    def log_prior(self, s: torch.Tensor, clouds: torch.Tensor) -> torch.Tensor:
        """(M,) the feasibility penalties (0 inside the feasible set)."""
        wall, overlap = self.violations(s, clouds)
        return -WALL_WEIGHT * wall - OVERLAP_WEIGHT * overlap

    def feasible(self, s: torch.Tensor) -> torch.Tensor:
        """(M,) bool: the particles lie in the feasible set of the state prior P(s)."""
        wall, overlap = self.violations(s, self.transform(s))
        return (wall == 0) & (overlap == 0)

def _bernoulli_loglik(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return y * torch.log(p) + (1 - y) * torch.log1p(-p)


def state_scores(model: SkillEffectModel, scene: FailureScene, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,) the eq. 4 log-density of particles ``s`` (M, 3n), and (M,) how many relation
    decisions of Γ on ξ(s)O_F (p ≥ 0.5) differ from R_F — one pass through Γ for both."""
    n = scene.points.shape[0]
    pair = ~torch.eye(n, dtype=torch.bool)
    clouds = scene.transform(s)
    mask = torch.ones(s.shape[0], n, dtype=torch.bool)
    rel = model.detect(model.encode(Observation(clouds, mask)), mask)
    lu = _bernoulli_loglik(rel.unary, scene.rel_unary).sum((1, 2))
    lb = (_bernoulli_loglik(rel.binary, scene.rel_binary).sum(-1) * pair).sum((1, 2))
    eu = ((rel.unary >= 0.5) != (scene.rel_unary > 0.5)).sum((1, 2))
    eb = (((rel.binary >= 0.5) != (scene.rel_binary > 0.5)) & pair[..., None]).sum((1, 2, 3))
    return lu + lb + scene.log_prior(s, clouds), eu + eb


def state_log_prob(model: SkillEffectModel, scene: FailureScene):
    """The eq. 4 target as a function of (M, 3n) particles."""
    return lambda s: state_scores(model, scene, s)[0]


def infer_states(model: SkillEffectModel, scene: FailureScene, particles: int = 20, steps: int = 60,
                 lr: float = 0.01, init_std: float = 0.03, kernel: bool = True, seed: int = 0,
                 progress=None) -> SVGDResult:
    """Eq. 5: M state particles (M, 3n) approximating Γ(R_F | ξ(s)O_F) P(s)."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.tensor([init_std, init_std, init_std * 3]).repeat(len(scene.movable))
    x0 = torch.randn(particles, scene.dim, generator=gen) * scale
    box = torch.tensor(OFFSET_BOX).repeat(len(scene.movable))
    model.eval()
    return run_svgd(state_log_prob(model, scene), x0, steps=steps, lr=lr, kernel=kernel,
                    project=lambda x: torch.maximum(torch.minimum(x, 2 * box), -2 * box),
                    at_bound=lambda x: (x.abs() > box).any(-1), progress=progress)


# --------------------------------------------------------------------------- actions
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
    box-normalised units u (see :func:`to_unit`)."""

    def __init__(self, scene: FailureScene, states: torch.Tensor, event: FailureEvent):
        spec = SKILLS[event.skill]
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
        return self.lo + (u + 1) * 0.5 * (self.hi - self.lo)

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
    skill_idx = list(SKILLS).index(event.skill)
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


def to_unit(event: FailureEvent, a: np.ndarray) -> np.ndarray:
    spec = SKILLS[event.skill]
    lo, hi = np.asarray(spec.low), np.asarray(spec.high)
    return 2 * (np.asarray(a) - lo) / (hi - lo) - 1


def from_unit(event: FailureEvent, u: np.ndarray) -> np.ndarray:
    spec = SKILLS[event.skill]
    lo, hi = np.asarray(spec.low), np.asarray(spec.high)
    # the final clip guards the box edges against rounding (the simulator refuses lo - 1e-16)
    return np.clip(lo + (np.clip(np.asarray(u, np.float64), -1, 1) + 1) * 0.5 * (hi - lo), lo, hi)


#: Action particles move in v = atanh(u); |v| is capped here (|u| < 0.9999) so it stays finite.
V_MAX = 5.0


def infer_actions(model: SkillEffectModel, scene: FailureScene, states: torch.Tensor, event: FailureEvent,
                  steps: int = 60, lr: float = 0.05, kernel: bool = True, seed: int = 0,
                  progress=None) -> SVGDResult:
    """Eq. 7: one action particle per state particle, started from draws of the feasible prior
    :class:`ActionPrior`; returns them in box-normalised units u (see :func:`from_unit`).

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


@dataclass
class Particles:
    """The optimised {(s_i, a_i)}: offsets (M, S, 4) ready for Real2Sim, actions (M, d)."""

    offsets: np.ndarray
    actions: np.ndarray
    state_log_prob: np.ndarray
    action_objective: np.ndarray
    seconds: dict = field(default_factory=dict)


def offsets_for_real2sim(scene: FailureScene, s: torch.Tensor) -> np.ndarray:
    """(M, 3n) particles → (M, S, 4) (dx, dy, dz=0, dyaw) per segment, zeros for furniture."""
    m = s.shape[0]
    out = np.zeros((m, scene.points.shape[0], 4), np.float64)
    off = s.detach().numpy().reshape(m, len(scene.movable), 3)
    out[:, scene.movable, 0] = off[..., 0]
    out[:, scene.movable, 1] = off[..., 1]
    out[:, scene.movable, 3] = off[..., 2]
    return out
