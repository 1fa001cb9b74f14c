"""SVGD inference over failure states (paper 000 §5.2 eq. 4-5, A.13.1), and the state draws
of the §6 baselines.

A particle s ∈ R^{3·n} holds a planar offset (dx, dy, dyaw) for each of the n movable
segments of O_F; ξ(s)O_F moves each movable segment's cloud by its offset (yaw about the
segment centroid; furniture stays). The target density (eq. 4) is

    log p(s) = Σ_{r ∈ R_F} log Γ(r | ξ(s)O_F)  +  log P(s)

where the first sum runs over every unary relation of every segment and every binary
relation of every ordered pair, with the value observed in R_F (the relations hold *and*
the absent ones stay absent: "the transformed point clouds match the relations in the
failure case"), and the prior P(s) is uniform over feasible states, made differentiable as
penalties: each offset within ``OFFSET_BOX`` (beyond it, a quadratic wall), segment
centroids inside the world config's workspace, contents of a container (``inside`` in R_F)
within its footprint less ``CONTAINMENT_MARGIN``, and no interpenetration — the overlap
volume of two segments' boxes, for every pair that is not inside one another in R_F, costs
``OVERLAP_WEIGHT`` per cube-root metre. SVGD particles (:func:`infer_states`) start at O_F's
own state plus a small spread (``init_std``), since O_F satisfies R_F by construction;
``kernel=False`` is the §6 "Gradient" baseline (independent gradient ascent).

The baselines draw states instead (:func:`prior_states`: the uniform feasible prior;
:func:`rejection_states`: rejection sampling on eq. 4, the §6 "Sampling" baseline).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, MOVABLE_CLASSES
from f2p_failure.events import FailureEvent
from f2p_skill_effect.model import Observation, SkillEffectModel

from .svgd import SVGDResult, run_svgd

#: Per movable segment: |dx|, |dy| (m) and |dyaw| (rad) the state prior allows.
OFFSET_BOX = (0.15, 0.15, float(np.pi / 6))
#: Penalty weight of the prior's walls (per unit² outside the box / workspace).
WALL_WEIGHT = 1000.0
#: Penalty per cube-root m of overlap between two segment boxes (no interpenetration).
OVERLAP_WEIGHT = 200.0
#: Overlap (m per axis) tolerated before the penalty: touching boxes of partial views overlap a little.
OVERLAP_TOL = 0.005
#: An item inside a container keeps this much (m) from the container's outer box in x and y
#: (about a wall's thickness), so Real2Sim can build it without touching the wall.
CONTAINMENT_MARGIN = 0.012
#: Rejection sampling draws at most this many candidate states per particle.
STATE_DRAWS_PER_PARTICLE = 250
#: Candidate states drawn (and scored by Γ) at a time; Gibbs sweeps per prior draw and uniform
#: draws per object and sweep.
STATE_BATCH = 200
PRIOR_SWEEPS = 2
PRIOR_TRIES = 4


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

    def real2sim_offsets(self, s: torch.Tensor) -> np.ndarray:
        """(M, 3n) particles → (M, S, 4) (dx, dy, dz=0, dyaw) per segment, zeros for furniture:
        the offsets ``f2p_sim.real2sim.scene_from_segments`` builds ξ(s_i)O_F from (§5.3)."""
        m = s.shape[0]
        out = np.zeros((m, self.points.shape[0], 4), np.float64)
        off = s.detach().numpy().reshape(m, len(self.movable), 3)
        out[:, self.movable, 0] = off[..., 0]
        out[:, self.movable, 1] = off[..., 1]
        out[:, self.movable, 3] = off[..., 2]
        return out

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


def prior_states(scene: FailureScene, n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3n_mov) draws of the uniform prior over feasible offsets: ``PRIOR_SWEEPS`` Gibbs
    sweeps from O_F (offset 0), each object in turn redrawn uniformly in its offset box until
    the scene's total violation does not grow (``PRIOR_TRIES`` draws, else it stays) — for a
    feasible O_F the Gibbs sampler of the uniform feasible prior, each step an exact draw of
    the object's conditional. (Independent uniform draws of all objects at once are almost
    never feasible with 7 objects: measured 0 of 5,000.)"""
    k, t = len(scene.movable), PRIOR_TRIES
    box = torch.tensor(OFFSET_BOX)
    s = torch.zeros(n, k, 3)

    def violation(x):
        flat = x.reshape(x.shape[0], -1)
        wall, overlap = scene.violations(flat, scene.transform(flat))
        return wall + overlap

    cur = violation(s)
    rows = torch.arange(n)
    for _ in range(PRIOR_SWEEPS):
        for j in range(k):
            prop = s[None].repeat(t, 1, 1, 1)                                   # (T, n, k, 3)
            prop[:, :, j] = (2 * torch.rand(t, n, 3, generator=gen) - 1) * box
            v = violation(prop.reshape(t * n, k, 3)).reshape(t, n)
            ok = v <= cur[None]
            first = ok.float().argmax(0)                                         # the first acceptable try
            take = ok.any(0)
            s[take] = prop[first, rows][take]
            cur[take] = v[first, rows][take]
    return s.reshape(n, -1)


def rejection_states(model: SkillEffectModel, scene: FailureScene, m: int, gen: torch.Generator,
                     objective: bool) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """M states (M, 3n) drawn from :func:`prior_states`, their log p (eq. 4) and {"drawn", "accepted"}.

    ``objective`` (the §6 "Sampling" baseline: "iteratively generates each simulation state ...
    until they satisfy the objective"): a draw is accepted when Γ's relation decisions on
    ξ(s)O_F disagree with R_F no more often than on O_F itself (the failure's own observation
    is the bar), until M are accepted or ``STATE_DRAWS_PER_PARTICLE``·M were drawn; then the
    rejected draws fill up, feasible ones first, each group by log p. Without ``objective``
    (Domain randomisation) every feasible draw is accepted."""
    with torch.no_grad():
        bar = state_scores(model, scene, torch.zeros(1, scene.dim))[1][0] if objective else None
        kept, kept_lp, rest, rest_lp, rest_feasible, drawn = [], [], [], [], [], 0
        while sum(len(k) for k in kept) < m and drawn < m * STATE_DRAWS_PER_PARTICLE:
            cand = prior_states(scene, STATE_BATCH, gen)
            drawn += STATE_BATCH
            lp, errors = state_scores(model, scene, cand)
            feasible = scene.feasible(cand)
            ok = feasible & ((errors <= bar) if objective else True)
            kept.append(cand[ok]), kept_lp.append(lp[ok])
            rest.append(cand[~ok]), rest_lp.append(lp[~ok]), rest_feasible.append(feasible[~ok])
        states, lps = torch.cat(kept)[:m], torch.cat(kept_lp)[:m]
        accepted = len(states)
        if accepted < m:   # budget spent: the best rejected candidates fill up, feasible ones first
            r, rl, rf = torch.cat(rest), torch.cat(rest_lp), torch.cat(rest_feasible)
            by_lp = torch.argsort(rl, descending=True)
            best = by_lp[torch.argsort((~rf[by_lp]).to(torch.uint8), stable=True)][:m - accepted]
            states, lps = torch.cat([states, r[best]]), torch.cat([lps, rl[best]])
    return states, lps, {"drawn": drawn, "accepted": accepted}


