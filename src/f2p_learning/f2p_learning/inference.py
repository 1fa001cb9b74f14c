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
skill's box, optimised in box-normalised coordinates u ∈ [-1, 1]^d (so that metres and
radians share one kernel) and clamped to the box after every step (the uniform prior). The
target is the generalised-Bayes posterior with β = 1 and the loss = minus the predictive
entropy of Γ over the failure relations R'_F (the literals the model mispredicted, or,
if none were recorded, every relation of the skill's target):

    log p(a_i) = Σ_{r ∈ R'_F} H(Γ(r | ξ(s_i)O_F, φ_F, a_i))

      + log N(u; u_F, ACTION_PRIOR_STD²)

so actions go where the model is unsure what φ_F does in the failure's neighbourhood — the
expected information gain of §5. The Gaussian around the failed action u_F is our addition
to the paper's uniform prior: our skill boxes (±0.8 m offsets) are far larger than the
useful space, and on the uniform prior alone the entropy drives the particles into the
box corners — objects thrown off the table and out of view (measured: 12 of 20 D+
transitions unusable). Particles start at a_F plus noise.

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
#: Std of the action prior around the failed action, in box-normalised units ([-1, 1]).
ACTION_PRIOR_STD = 0.3
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
        return FailureScene(obs.points[0], movable, ru, rb, ins | ins.t(), (lo, hi), contents)

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

    def log_prior(self, s: torch.Tensor, clouds: torch.Tensor) -> torch.Tensor:
        """(M,) the feasibility penalties (0 inside the feasible set)."""
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
        overlap = ((vol + 1e-12).pow(1.0 / 3.0) * pair).sum((1, 2)) / 2
        # Contents stay within their container's footprint (inside pairs may not overlap-check:
        # pushed into a wall, Real2Sim rejects the scene — measured: half of D+ lost without this).
        if self.contents:
            ci, cj = zip(*self.contents)
            ci, cj = list(ci), list(cj)
            out_lo = torch.relu(blo[:, cj, :2] + CONTAINMENT_MARGIN - blo[:, ci, :2])
            out_hi = torch.relu(bhi[:, ci, :2] - bhi[:, cj, :2] + CONTAINMENT_MARGIN)
            wall = wall + (out_lo.pow(2) + out_hi.pow(2)).sum((1, 2))
        return -WALL_WEIGHT * wall - OVERLAP_WEIGHT * overlap


def _bernoulli_loglik(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return y * torch.log(p) + (1 - y) * torch.log1p(-p)


def state_log_prob(model: SkillEffectModel, scene: FailureScene):
    """The eq. 4 target as a function of (M, 3n) particles."""
    n = scene.points.shape[0]
    pair = ~torch.eye(n, dtype=torch.bool)

    def log_prob(s: torch.Tensor) -> torch.Tensor:
        clouds = scene.transform(s)
        mask = torch.ones(s.shape[0], n, dtype=torch.bool)
        rel = model.detect(model.encode(Observation(clouds, mask)), mask)
        lu = _bernoulli_loglik(rel.unary, scene.rel_unary).sum((1, 2))
        lb = (_bernoulli_loglik(rel.binary, scene.rel_binary).sum(-1) * pair).sum((1, 2))
        return lu + lb + scene.log_prior(s, clouds)
    return log_prob


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


def action_log_prob(model: SkillEffectModel, scene: FailureScene, states: torch.Tensor, event: FailureEvent):
    """The eq. 6 target over box-normalised actions u (M, d), states fixed."""
    spec = SKILLS[event.skill]
    lo, hi = torch.tensor(spec.low, dtype=torch.float32), torch.tensor(spec.high, dtype=torch.float32)
    lits = failure_literals(event)
    with torch.no_grad():
        clouds = scene.transform(states)
        mask = torch.ones(states.shape[0], clouds.shape[1], dtype=torch.bool)
        latent = model.encode(Observation(clouds, mask))
    skill_idx = list(SKILLS).index(event.skill)
    m = states.shape[0]
    u_f = torch.from_numpy(to_unit(event, event.params).astype(np.float32))

    def log_prob(u: torch.Tensor) -> torch.Tensor:
        a = lo + (u + 1) * 0.5 * (hi - lo)
        params = torch.zeros(m, PARAM_DIM)
        params[:, :spec.dim] = a
        rel = model.detect(model.step(latent, mask, SkillBatch(torch.full((m,), skill_idx), torch.full((m,), event.target), params)), mask)
        h = torch.zeros(m)
        for pred, subj, obj in lits:
            h = h + _bernoulli_entropy(rel.prob(pred, subj, obj))
        return h - 0.5 * ((u - u_f) / ACTION_PRIOR_STD).pow(2).sum(-1)
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


def infer_actions(model: SkillEffectModel, scene: FailureScene, states: torch.Tensor, event: FailureEvent,
                  steps: int = 60, lr: float = 0.02, init_std: float = 0.2, kernel: bool = True, seed: int = 0,
                  progress=None) -> SVGDResult:
    """Eq. 7: one action particle per state particle, in box-normalised units (see from_unit)."""
    gen = torch.Generator().manual_seed(seed + 1)
    m = states.shape[0]
    u0 = torch.from_numpy(to_unit(event, event.params).astype(np.float32))[None].expand(m, -1)
    u0 = (u0 + init_std * torch.randn(u0.shape, generator=gen)).clamp(-1, 1)
    model.eval()
    return run_svgd(action_log_prob(model, scene, states, event), u0, steps=steps, lr=lr, kernel=kernel,
                    project=lambda x: x.clamp(-1, 1), at_bound=lambda x: (x.abs() >= 1).any(-1),
                    progress=progress)


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
