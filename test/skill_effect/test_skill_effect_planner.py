"""Planner: shooting + CEM finds the one parameter that reaches the goal.

The model here is a small hand-written SkillEffectModel whose predictions are analytic
(not learned), so the right answer is known exactly: the latent of an object is its point
centroid; pick_place moves the target's centroid by (dx, dy, dz); push moves it in the
plane by distance·(cos, sin) of direction; ``inside(i, j)`` has probability
exp(-|c_i - c_j|² / σ²), σ = 0.05 m. Object 0 (movable) starts at the origin, object 1 (not
movable) at (0.5, -0.3, 0.1): only pick_place(0) with a ≈ (0.5, -0.3, 0.1) reaches the goal.
"""

import numpy as np
import pytest
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS
from f2p_skill_effect.model import Observation, RelationProbs, SkillEffectModel
from f2p_skill_effect.planner import Plan, PlannerConfig, plan

SIGMA = 0.05
TARGET = np.array([0.5, -0.3, 0.1])


class AnalyticModel(SkillEffectModel):
    def encode(self, obs):
        return obs.points.mean(2) * obs.mask[..., None]

    def step(self, latent, mask, skill):
        d = torch.zeros_like(latent[:, 0])
        pp = skill.skill == list(SKILLS).index("pick_place")
        pu = skill.skill == list(SKILLS).index("push")
        d[pp] = skill.params[pp]
        ang, dist = skill.params[:, 0], skill.params[:, 1]
        d[pu, 0] = (dist * torch.cos(ang))[pu]
        d[pu, 1] = (dist * torch.sin(ang))[pu]
        out = latent.clone()
        rows = torch.arange(latent.shape[0])
        out[rows, skill.target] = latent[rows, skill.target] + d
        return out

    def detect(self, latent, mask):
        b, n, _ = latent.shape
        u = torch.zeros(b, n, len(UNARY_RELATIONS))
        u[:, 0, UNARY_RELATIONS.index("movable")] = 1.0
        bi = torch.zeros(b, n, n, len(BINARY_RELATIONS))
        d2 = ((latent[:, :, None] - latent[:, None]) ** 2).sum(-1)
        bi[..., BINARY_RELATIONS.index("inside")] = torch.exp(-d2 / SIGMA ** 2)
        return RelationProbs(u, bi)


def _scene():
    rng = np.random.default_rng(0)
    c0 = rng.normal(0, 0.01, (64, 3))
    c0 -= c0.mean(0)
    c1 = rng.normal(0, 0.01, (64, 3))
    c1 += TARGET - c1.mean(0)
    return Observation.from_clouds([c0, c1], 64, seed=0)


GOAL = [("inside", 0, 1)]


def test_given_skeleton_finds_the_parameter():
    p = plan(AnalyticModel(), _scene(), GOAL, skeleton=[("pick_place", 0)],
             cfg=PlannerConfig(samples=256, iterations=4, seed=0))
    assert isinstance(p, Plan) and p.skeleton == [("pick_place", 0)]
    SKILLS["pick_place"].check(p.parameters[0])
    assert np.allclose(p.parameters[0], TARGET, atol=0.03), p.parameters
    assert p.goal_probability > 0.6
    assert len(p.step_relations) == 1 and p.step_relations[0]["binary"].shape == (2, 2, 9)
    assert p.evaluated_samples == 256 * 5 and p.timing["total_s"] > 0


def test_cem_improves_on_shooting_alone():
    obs = _scene()
    shoot = plan(AnalyticModel(), obs, GOAL, [("pick_place", 0)], PlannerConfig(samples=256, iterations=0, seed=0))
    cem = plan(AnalyticModel(), obs, GOAL, [("pick_place", 0)], PlannerConfig(samples=256, iterations=4, seed=0))
    assert cem.goal_probability >= shoot.goal_probability


def test_enumerated_skeletons_pick_the_only_working_skill():
    # push cannot lift object 0 by 0.1 m, drawer skills need a drawer, object 1 is not movable
    p = plan(AnalyticModel(), _scene(), GOAL, cfg=PlannerConfig(samples=256, iterations=4, horizon=1, seed=0))
    assert p.skeleton == [("pick_place", 0)]
    assert p.timing["skeletons"] == 2      # pick_place(0), push(0)
    assert p.goal_probability > 0.6


def test_deterministic_and_validated():
    a = plan(AnalyticModel(), _scene(), GOAL, [("pick_place", 0)], PlannerConfig(seed=3))
    b = plan(AnalyticModel(), _scene(), GOAL, [("pick_place", 0)], PlannerConfig(seed=3))
    assert a.parameters == b.parameters
    with pytest.raises(ValueError, match="object 5"):
        plan(AnalyticModel(), _scene(), [("inside", 0, 5)], [("pick_place", 0)])
    with pytest.raises(ValueError, match="unknown skill"):
        plan(AnalyticModel(), _scene(), GOAL, [("fly", 0)])
