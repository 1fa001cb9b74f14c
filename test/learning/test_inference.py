"""SVGD state and action inference around a real failure event (f2p_learning.states, .actions),
the targeted pairs of every method (.pairs) and D+ (.dplus) (paper 000 §5.1-5.3), with a tiny
random-weight model."""
import dataclasses

import numpy as np
import pytest
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS
import f2p_learning.dplus as dplus
from f2p_learning.actions import ActionPrior, action_log_prob, failure_literals, infer_actions, rejection_actions
from f2p_learning.dplus import NoTrainingDataError, simulate_pairs
from f2p_learning.pairs import METHODS as TARGETED_METHODS
from f2p_learning.pairs import infer_pairs
from f2p_learning.states import OFFSET_BOX, FailureScene, infer_states, prior_states, state_log_prob, state_scores
from f2p_common.vocabulary import MOVABLE_CLASSES
from f2p_common.dataset import FLAG_UNSEEN_SEGMENT, SimDataset
from support.failure_fixtures import (TINY_POINTS, failure_event, tiny_model, workspace,
                                      world)



@pytest.fixture(scope="module")
def event():
    return failure_event()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def scene(event):
    return FailureScene.from_event(event, TINY_POINTS, workspace())


def furniture(event):
    return [i for i, l in enumerate(event.segment_labels) if l not in MOVABLE_CLASSES]


def random_particles(scene, m=5, seed=0, scale=0.1):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(m, scene.dim, generator=gen)


# ------------------------------------------------------------------ the scene
def test_scene_from_event(event, scene):
    s = event.num_segments
    assert scene.points.shape == (s, TINY_POINTS, 3)
    assert scene.movable == [i for i, l in enumerate(event.segment_labels) if l in MOVABLE_CLASSES]
    assert furniture(event), "the transport scene has tables"
    assert scene.dim == 3 * len(scene.movable)
    assert torch.equal(scene.rel_unary, torch.from_numpy(event.relations_before_unary.astype(np.float32)))
    assert torch.equal(scene.rel_binary, torch.from_numpy(event.relations_before_binary.astype(np.float32)))
    assert torch.equal(scene.inside_pairs, scene.inside_pairs.t())
    ins = event.relations_before_binary[:, :, BINARY_RELATIONS.index("inside")]
    for i, j in zip(*np.nonzero(ins)):
        assert scene.inside_pairs[i, j] and scene.inside_pairs[j, i]


def test_scene_without_movable_segment_refused(event):
    only_tables = dataclasses.replace(event, segment_labels=["table"] * event.num_segments)
    with pytest.raises(ValueError, match="no movable segment"):
        FailureScene.from_event(only_tables, TINY_POINTS, workspace())


def test_zero_particles_leave_the_clouds_unchanged(scene, event):
    out = scene.transform(torch.zeros(3, scene.dim))
    assert out.shape == (3, *scene.points.shape)
    for k in range(3):
        assert torch.allclose(out[k], scene.points, atol=1e-6, rtol=0)
    fur = furniture(event)
    assert torch.equal(out[:, fur], scene.points[None, fur].expand(3, -1, -1, -1))
    assert torch.equal(out[..., 2], scene.points[None, ..., 2].expand(3, -1, -1))   # z never moves


def test_furniture_never_moves(scene, event):
    s = random_particles(scene, m=6, seed=1, scale=0.5)
    out = scene.transform(s)
    fur = furniture(event)
    assert torch.equal(out[:, fur], scene.points[None, fur].expand(6, -1, -1, -1))
    assert torch.equal(out[..., 2], scene.points[None, ..., 2].expand(6, -1, -1))
    # every movable segment did move
    moved = (out[:, scene.movable] - scene.points[None, scene.movable]).abs().amax((-1, -2))
    assert (moved > 1e-4).all()


def test_translation_moves_each_segment_by_its_own_offset(scene):
    n = len(scene.movable)
    off = torch.zeros(1, n, 3)
    off[0, :, 0] = torch.linspace(-0.1, 0.1, n)
    off[0, :, 1] = torch.linspace(0.05, -0.05, n)
    out = scene.transform(off.reshape(1, -1))[0]
    for k, seg in enumerate(scene.movable):
        d = out[seg] - scene.points[seg]
        assert torch.allclose(d[:, 0], off[0, k, 0].expand(TINY_POINTS), atol=1e-6)
        assert torch.allclose(d[:, 1], off[0, k, 1].expand(TINY_POINTS), atol=1e-6)
        assert torch.equal(d[:, 2], torch.zeros(TINY_POINTS))


def test_pure_yaw_keeps_each_centroid_and_shape(scene):
    n = len(scene.movable)
    s = torch.zeros(2, n, 3)
    s[0, :, 2] = 0.4
    s[1, :, 2] = torch.linspace(-0.5, 0.5, n)
    out = scene.transform(s.reshape(2, -1))
    for m in range(2):
        for k, seg in enumerate(scene.movable):
            before, after = scene.points[seg], out[m, seg]
            assert torch.allclose(after.mean(0), before.mean(0), atol=1e-5)
            # rigid: distances to the centroid are kept, and the cloud did rotate
            assert torch.allclose((after - after.mean(0)).norm(dim=-1), (before - before.mean(0)).norm(dim=-1), atol=1e-5)
            if abs(float(s[m, k, 2])) > 0.1:
                assert not torch.allclose(after, before, atol=1e-3)
            # the rotation angle about z is the particle's yaw
            rb, ra = (before - before.mean(0))[:, :2], (after - after.mean(0))[:, :2]
            i = int(rb.norm(dim=-1).argmax())
            ang = torch.atan2(ra[i, 1], ra[i, 0]) - torch.atan2(rb[i, 1], rb[i, 0])
            ang = (ang + np.pi) % (2 * np.pi) - np.pi
            assert float(ang) == pytest.approx(float(s[m, k, 2]), abs=1e-4)


def test_state_log_prob_gradients_reach_the_particles(model, scene):
    s = random_particles(scene, m=4, seed=2, scale=0.03).requires_grad_(True)
    lp = state_log_prob(model, scene)(s)
    assert lp.shape == (4,)
    assert torch.isfinite(lp).all()
    (g,) = torch.autograd.grad(lp.sum(), s)
    assert torch.isfinite(g).all()
    assert (g.abs().sum(-1) > 0).all()


def test_prior_walls_lower_the_state_log_prob(model, scene):
    lp = state_log_prob(model, scene)
    inside = torch.zeros(1, scene.dim)
    outside = torch.zeros(1, scene.dim)
    outside[0, 0] = OFFSET_BOX[0] + 0.1           # beyond the offset box (and far from the others)
    with torch.no_grad():
        assert (lp(outside) < lp(inside) - 5).all()
        prior = scene.log_prior(outside, scene.transform(outside))
    assert float(prior) < 0


# ------------------------------------------------------------------ inference
def test_infer_states(model, scene):
    res = infer_states(model, scene, particles=6, steps=5, seed=0)
    assert res.particles.shape == (6, scene.dim)
    assert torch.isfinite(res.particles).all() and torch.isfinite(res.log_prob).all()
    assert res.log_prob.shape == (6,)
    assert len(res.history) == 5 and all("at_bound" in h for h in res.history)
    box = torch.tensor(OFFSET_BOX).repeat(len(scene.movable))
    assert (res.particles.abs() <= 2 * box + 1e-6).all()          # the projection's limit
    again = infer_states(model, scene, particles=6, steps=5, seed=0)
    assert torch.equal(res.particles, again.particles)             # seeded


def test_infer_actions(model, scene, event):
    states = infer_states(model, scene, particles=6, steps=2, seed=0).particles
    res = infer_actions(model, scene, states, event, steps=5, seed=0)
    d = SKILLS[event.skill].dim
    assert res.particles.shape == (6, d)
    assert torch.isfinite(res.particles).all() and torch.isfinite(res.log_prob).all()
    assert (res.particles >= -1).all() and (res.particles <= 1).all()
    assert len(res.history) == 5 and all("at_bound" in h for h in res.history)
    spec = SKILLS[event.skill]
    actions = np.stack([spec.from_unit(u) for u in res.particles.numpy()])
    assert (actions >= np.asarray(spec.low)).all() and (actions <= np.asarray(spec.high)).all()
    for a in actions:
        spec.check(list(a))
    # started from the feasible prior, five small steps keep them (nearly: the wall is soft) feasible
    assert (ActionPrior(scene, states, event).violation(res.particles) < 0.03).all()
    again = infer_actions(model, scene, states, event, steps=5, seed=0)
    assert torch.equal(res.particles, again.particles)              # seeded


def support_footprints(event):
    fixed = [np.asarray(c)[:, :2] for c, l in zip(event.observation_before, event.segment_labels) if l not in MOVABLE_CLASSES]
    return [(c.min(0), c.max(0)) for c in fixed]


def test_action_prior_feasible_means_the_target_ends_over_a_support(model, scene, event):
    assert event.skill == "pick_place"
    states = torch.zeros(4, scene.dim)
    prior = ActionPrior(scene, states, event)
    spec = SKILLS[event.skill]
    sup = support_footprints(event)
    assert torch.allclose(scene.supports, torch.tensor(np.array([[lo, hi] for lo, hi in sup]), dtype=torch.float32))
    u = prior.sample(50, torch.Generator().manual_seed(0))            # (50, 4, d)
    assert u.shape == (50, 4, SKILLS[event.skill].dim) and (u.abs() <= 1).all()
    c = prior.center[0].numpy()
    for draw in u[:, 0]:
        assert bool(prior.feasible(draw[None].expand(4, -1))[0])
        end = c + spec.from_unit(draw.numpy())[:2]
        assert any((lo <= end).all() and (end <= hi).all() for lo, hi in sup)
    # the draws cover more than one support (the tables are the scene's furniture)
    ends = c + np.stack([spec.from_unit(x)[:2] for x in u[:, 0].numpy()])
    on = {next(k for k, (lo, hi) in enumerate(sup) if (lo <= e).all() and (e <= hi).all()) for e in ends}
    assert len(on) >= 2
    # an action throwing the target 10 cm past every support is infeasible, with a wall that
    # grows with the distance and a gradient pointing back
    far = np.asarray(SKILLS[event.skill].low, dtype=np.float64).copy()
    lo_all = min(lo[1] for lo, _ in sup)
    far[1] = lo_all - 0.1 - c[1]
    far[1] = max(far[1], SKILLS[event.skill].low[1])
    uf = torch.tensor(spec.to_unit(far), dtype=torch.float32)[None].repeat(4, 1).requires_grad_(True)
    assert not prior.feasible(uf).any() and (prior.violation(uf) > 0.05).all()
    (g,) = torch.autograd.grad(prior.log_prob(uf).sum(), uf)
    assert (g[:, 1] > 0).all()                                    # back towards the supports (+y)


def test_action_prior_without_supports_is_the_box(model, scene, event):
    bare = dataclasses.replace(scene, supports=torch.zeros(0, 2, 2))
    prior = ActionPrior(bare, torch.zeros(3, scene.dim), event)
    u = torch.ones(3, SKILLS[event.skill].dim)
    assert prior.feasible(u).all() and torch.equal(prior.log_prob(u), torch.zeros(3))


def test_action_log_prob_is_differentiable(model, scene, event):
    states = torch.zeros(3, scene.dim)
    prior = ActionPrior(scene, states, event)
    obj = action_log_prob(model, scene, states, event, prior)
    u = prior.sample(1, torch.Generator().manual_seed(1))[0].requires_grad_(True)
    lp = obj(u)
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    (g,) = torch.autograd.grad(lp.sum(), u)
    assert torch.isfinite(g).all() and (g.abs().sum(-1) > 0).all()
    # at feasible actions the prior adds nothing: the objective is the entropy sum, at most |R'_F| log 2
    with torch.no_grad():
        at = obj(u)
    assert (at <= len(failure_literals(event)) * np.log(2) + 1e-4).all() and (at > 0).all()


def test_unit_round_trip_and_clipping(event):
    spec = SKILLS[event.skill]
    lo, hi = np.asarray(spec.low), np.asarray(spec.high)
    rng = np.random.default_rng(0)
    for a in rng.uniform(lo, hi, (20, spec.dim)):
        assert np.allclose(spec.from_unit(spec.to_unit(a)), a, atol=1e-9, rtol=0)
    assert np.allclose(spec.to_unit(lo), -1) and np.allclose(spec.to_unit(hi), 1)
    assert np.array_equal(spec.from_unit(-np.ones(spec.dim)), lo)
    assert np.array_equal(spec.from_unit(np.ones(spec.dim)), hi)
    # slightly (or far) outside [-1, 1]: clipped to the skill box, never beyond it
    u = np.array([1.0 + 1e-7, -1.0 - 1e-7, 3.0][:spec.dim])
    a = spec.from_unit(u)
    assert a[0] == hi[0] and a[1] == lo[1]
    assert (a >= lo).all() and (a <= hi).all()
    spec.check(list(a))


def test_real2sim_offsets(scene, event):
    s = random_particles(scene, m=3, seed=4)
    off = scene.real2sim_offsets(s)
    assert off.shape == (3, event.num_segments, 4) and off.dtype == np.float64
    per = s.numpy().reshape(3, len(scene.movable), 3)
    assert np.allclose(off[:, scene.movable][..., [0, 1, 3]], per)
    assert (off[:, furniture(event)] == 0).all()
    assert (off[..., 2] == 0).all()


# ------------------------------------------------------------------ R'_F
def test_failure_literals_are_the_mismatches(event):
    assert event.mismatches
    lits = failure_literals(event)
    assert lits == [(m["predicate"], m["subject"], m["object"]) for m in event.mismatches]


def test_failure_literals_without_mismatches_cover_the_target(event):
    ev = dataclasses.replace(event, mismatches=[])
    lits = failure_literals(ev)
    t, n = ev.target, ev.num_segments
    want = {(u, t, None) for u in UNARY_RELATIONS}
    want |= {(b, t, j) for j in range(n) if j != t for b in BINARY_RELATIONS}
    want |= {(b, j, t) for j in range(n) if j != t for b in BINARY_RELATIONS}
    assert len(lits) == len(set(lits)) == len(UNARY_RELATIONS) + 2 * (n - 1) * len(BINARY_RELATIONS)
    assert set(lits) == want


# ------------------------------------------------------------------ targeted pairs
@pytest.mark.parametrize("method", TARGETED_METHODS)
def test_infer_pairs(method, model, event):
    pairs = infer_pairs(method, model, event, TINY_POINTS, workspace(), particles=4, steps=3, seed=0)
    spec = SKILLS[event.skill]
    n_mov = sum(l in MOVABLE_CLASSES for l in event.segment_labels)
    assert pairs.method == method
    assert pairs.offsets.shape == (4, event.num_segments, 4)
    assert np.isfinite(pairs.offsets).all()
    assert (pairs.offsets[:, furniture(event)] == 0).all()
    assert (pairs.offsets[..., 2] == 0).all()
    assert pairs.state_particles.shape == (4, 3 * n_mov)
    assert pairs.actions.shape == (4, spec.dim)
    assert (pairs.actions >= np.asarray(spec.low)).all() and (pairs.actions <= np.asarray(spec.high)).all()
    assert pairs.state_objective.shape == (4,) and np.isfinite(pairs.state_objective).all()
    assert pairs.action_objective.shape == (4,) and np.isfinite(pairs.action_objective).all()
    assert pairs.seconds >= 0
    if method in ("fail2progress", "gradient"):
        assert len(pairs.history["states"]) == 3 and len(pairs.history["actions"]) == 3
        box = np.tile(2 * np.asarray(OFFSET_BOX), n_mov)
        assert (np.abs(pairs.state_particles) <= box + 1e-6).all()
    else:
        box = np.tile(np.asarray(OFFSET_BOX), n_mov)        # candidates from the prior box
        assert (np.abs(pairs.state_particles) <= box + 1e-6).all()
    if method == "sampling":
        assert len({tuple(r) for r in pairs.state_particles}) == 4    # drawn without replacement
    if method == "domain_randomization":                            # A.16: the failed action, held constant
        assert np.allclose(pairs.actions, np.asarray(event.params)[None].repeat(4, 0), atol=1e-6)
    else:
        prior = ActionPrior(FailureScene.from_event(event, TINY_POINTS, workspace()),
                            torch.from_numpy(pairs.state_particles), event)
        units = torch.from_numpy(np.stack([spec.to_unit(a) for a in pairs.actions]).astype(np.float32))
        # the wall is soft: an Adam step (lr 0.05 in atanh space, up to 4 cm of placement) may overshoot it
        assert (prior.violation(units) < 0.05).all()


@pytest.mark.parametrize("method", ["sampling", "domain_randomization"])
def test_rejection_baselines_keep_feasible_states(method, model, event):
    pairs = infer_pairs(method, model, event, TINY_POINTS, workspace(), particles=4, seed=0)
    rej = pairs.history["state_rejection"]
    assert rej["drawn"] >= 4 and rej["drawn"] % 4 == 0 and 0 <= rej["accepted"] <= 4
    scene = FailureScene.from_event(event, TINY_POINTS, workspace())
    states = torch.from_numpy(pairs.state_particles)
    assert scene.feasible(states[:rej["accepted"]]).all()
    if method == "sampling":     # accepted: Γ's relation decisions no worse than on O_F itself
        with torch.no_grad():
            bar = state_scores(model, scene, torch.zeros(1, scene.dim))[1][0]
            assert (state_scores(model, scene, states[:rej["accepted"]])[1] <= bar).all()
        assert 0 <= pairs.history["action_rejection"]["accepted"] <= 4


def test_state_feasibility_matches_the_prior(scene):
    zero = torch.zeros(1, scene.dim)
    assert scene.feasible(zero).all()                                  # O_F itself is feasible
    assert float(scene.log_prior(zero, scene.transform(zero))[0]) == 0.0
    far = zero.clone()
    far[0, 0] = OFFSET_BOX[0] + 0.05
    assert not scene.feasible(far).any()
    # an item shifted onto its neighbour: overlap, infeasible
    lo, hi = scene.points.min(1).values, scene.points.max(1).values
    a, b = scene.movable[-2], scene.movable[-1]
    shift = torch.zeros(1, len(scene.movable), 3)
    shift[0, -1, :2] = ((lo[a] + hi[a]) / 2 - (lo[b] + hi[b]) / 2)[:2]
    assert not scene.feasible(shift.reshape(1, -1)).any()


def test_prior_states_are_feasible_draws_of_the_offset_box(scene):
    s = prior_states(scene, 64, torch.Generator().manual_seed(3))
    assert s.shape == (64, scene.dim)
    assert scene.feasible(s).all()                 # the Gibbs sweep starts at O_F and never leaves the set
    box = torch.tensor(OFFSET_BOX).repeat(len(scene.movable))
    assert (s.abs() <= box).all()
    moved = (s.reshape(64, len(scene.movable), 3) != 0).all(-1)   # (draw, object) redrawn at least once
    assert moved.float().mean() > 0.8
    assert len({tuple(r.tolist()) for r in s}) == 64
    # every object's offsets spread over its box, not stuck near O_F
    per_obj = s.reshape(64, len(scene.movable), 3)[..., :2]
    assert (per_obj.std(0) > 0.2 * torch.tensor(OFFSET_BOX[:2])).all()


def test_rejection_actions_accept_by_the_objective(model, scene, event):
    states = torch.zeros(5, scene.dim)
    prior = ActionPrior(scene, states, event)
    # a made-up objective at its maximum where u_x > 0, 50 nats lower elsewhere: only u_x > 0 is accepted
    obj = lambda u: torch.where(u[:, 0] > 0, torch.tensor(1.0), torch.tensor(-49.0))
    units, h, accepted = rejection_actions(prior, obj, 1.0, torch.Generator().manual_seed(0))
    assert accepted == 5 and (units[:, 0] > 0).all() and torch.equal(h, torch.ones(5))
    assert prior.feasible(units).all()


def test_infer_pairs_unknown_method(model, event):
    with pytest.raises(ValueError, match="unknown method"):
        infer_pairs("small", model, event, TINY_POINTS, workspace(), particles=2, steps=1)


def test_simulate_pairs_writes_a_dataset(model, event, tmp_path):
    cfg, backend = world()
    pairs = infer_pairs("domain_randomization", model, event, TINY_POINTS, workspace(), particles=4, steps=1, seed=0)
    # O_F itself (zero offsets) always builds: Real2Sim replays it for classification
    pairs = dataclasses.replace(pairs, offsets=np.zeros_like(pairs.offsets))
    d = simulate_pairs(event, pairs, backend, tmp_path / "d_plus", points_per_segment=32, seed=0)
    assert d.built == d.usable == 4 and d.skipped == []
    ds = SimDataset(tmp_path / "d_plus", verify=True)
    assert len(ds) == 4
    rows = list(ds.transitions(skip_flags=0))
    assert len(rows) == 4
    skill = SKILLS[event.skill].index
    for k, row in enumerate(rows):
        assert int(row["skill"]) == skill
        assert np.allclose(row["params"][:SKILLS[event.skill].dim], pairs.actions[k], atol=1e-6)
        assert row["seg_class"].shape == (event.num_segments,)
        assert row["scene"]["event_id"] == event.event_id and row["scene"]["particle"] == k
        assert row["scene"]["task"] == "d+:domain_randomization"
        assert row["obs_t_points"].shape == (event.num_segments, 32, 3)
    assert ds.manifest["params"]["method"] == "domain_randomization"
    assert ds.manifest["params"]["event_id"] == event.event_id
    assert ds.manifest["params"]["source"] == "targeted"


def test_simulate_pairs_reports_unbuildable_particles(model, event, tmp_path):
    cfg, backend = world()
    pairs = infer_pairs("domain_randomization", model, event, TINY_POINTS, workspace(), particles=3, steps=1, seed=0)
    off = np.zeros_like(pairs.offsets)
    mov = [i for i, l in enumerate(event.segment_labels) if l in MOVABLE_CLASSES]
    off[1, mov[-1], :2] = 5.0                       # particle 1: an object far outside the workspace
    d = simulate_pairs(event, dataclasses.replace(pairs, offsets=off), backend, tmp_path / "d", points_per_segment=16)
    assert d.built == 2
    assert [s["particle"] for s in d.skipped] == [1]
    assert len(SimDataset(tmp_path / "d")) == 2
    # nothing buildable at all: an error, not an empty dataset
    off_all = np.zeros_like(pairs.offsets)
    off_all[:, mov[-1], :2] = 5.0
    with pytest.raises(NoTrainingDataError, match="none of the 3 particles"):
        simulate_pairs(event, dataclasses.replace(pairs, offsets=off_all), backend, tmp_path / "e", points_per_segment=16)
    assert not (tmp_path / "e" / "manifest.json").exists()



def test_gradient_actions_maximise_the_objective_itself(model, scene, event):
    """Without the kernel no Jacobian term: independent ascent never lowers a particle's objective
    much and does not herd the particles to the box centre."""
    states = infer_states(model, scene, particles=6, steps=2, seed=0).particles
    start = ActionPrior(scene, states, event).sample(1, torch.Generator().manual_seed(1))[0]   # infer_actions' draw
    res = infer_actions(model, scene, states, event, steps=20, kernel=False, seed=0)
    with torch.no_grad():
        before = action_log_prob(model, scene, states, event)(start)
    assert (res.log_prob >= before - 0.05).all()
    assert float(res.particles.abs().mean()) > 0.5 * float(start.abs().mean())


def test_simulate_pairs_refuses_when_no_transition_is_usable(model, event, tmp_path, monkeypatch):
    """Every built transition has a segment the camera did not see: f2p-train would skip them
    all, so simulate_pairs says so instead of writing a dataset nothing can learn from."""
    cfg, backend = world()
    pairs = infer_pairs("domain_randomization", model, event, TINY_POINTS, workspace(), particles=2, steps=1, seed=0)
    pairs = dataclasses.replace(pairs, offsets=np.zeros_like(pairs.offsets))
    real = dplus.record_step

    def unseen(*args, **kw):
        row, info = real(*args, **kw)
        row["flags"] = np.uint8(int(row["flags"]) | FLAG_UNSEEN_SEGMENT)
        return row, info

    monkeypatch.setattr(dplus, "record_step", unseen)
    with pytest.raises(NoTrainingDataError, match="none of the 2 built transitions is usable"):
        simulate_pairs(event, pairs, backend, tmp_path / "d", points_per_segment=16)
    assert not (tmp_path / "d" / "manifest.json").exists()
    monkeypatch.setattr(dplus, "record_step", real)
    d = simulate_pairs(event, pairs, backend, tmp_path / "ok", points_per_segment=16)
    assert d.built == 2 and d.usable == 2
