"""Paper 000 A.11 model: shapes, masking, gradients to point coordinates, overfitting."""
import pytest
import torch

from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS
from f2p_skill_effect.model import (ModelConfig, Observation, PointsToPlansModel, SkillBatch,
                                    SkillEffectModel, compute_losses, farthest_point_sample)

from support.synthetic import TINY, synthetic_batch


def test_full_size_shapes_and_paper_dimensions():
    torch.manual_seed(0)
    m = PointsToPlansModel(ModelConfig())
    assert isinstance(m, SkillEffectModel)
    obs = Observation(torch.rand(2, 5, 256, 3), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    x = m.encode(obs)
    assert x.shape == (2, 5, 256)                       # P_i (128) ⊕ ID_i (128)
    assert torch.all(x[0, 3:] == 0)                     # padded objects carry nothing
    sk = SkillBatch(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([[0.1, 0.2, 0.0], [0.5, 0.1, 0.0]]))
    assert m.skill_token(sk).shape == (2, 256)
    rel = m.rollout(obs, [sk, sk, sk])
    assert len(rel) == 3
    assert rel[0].unary.shape == (2, 5, len(UNARY_RELATIONS))
    assert rel[0].binary.shape == (2, 5, 5, len(BINARY_RELATIONS))
    assert torch.all(rel[0].binary[0, 3:] == 0) and torch.all(rel[0].binary[:, range(5), range(5)] == 0)
    assert ((rel[-1].unary >= 0) & (rel[-1].unary <= 1)).all()
    assert len(m.dynamics.layers) == 2 and m.dynamics.layers[0].self_attn.num_heads == 2


def test_padding_does_not_change_real_objects():
    torch.manual_seed(0)
    m = PointsToPlansModel(TINY).eval()
    pts = torch.rand(1, 3, 32, 3)
    sk = SkillBatch(torch.tensor([0]), torch.tensor([1]), torch.tensor([[0.1, 0.2, 0.0]]))
    a = m.rollout(Observation(pts, torch.ones(1, 3, dtype=torch.bool)), [sk])[0]
    padded = torch.cat([pts, torch.rand(1, 1, 32, 3)], 1)
    b = m.rollout(Observation(padded, torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)), [sk])[0]
    assert torch.allclose(a.binary[0], b.binary[0, :3, :3], atol=1e-5)


def test_predictions_differentiable_wrt_points():
    torch.manual_seed(0)
    m = PointsToPlansModel(ModelConfig())
    pts = torch.rand(1, 3, 256, 3, requires_grad=True)
    obs = Observation(pts, torch.ones(1, 3, dtype=torch.bool))
    sk = SkillBatch(torch.tensor([1]), torch.tensor([0]), torch.tensor([[0.3, 0.2, 0.0]]))
    p = m.rollout(obs, [sk, sk])[-1].prob("above", 0, 1).sum()
    (g,) = torch.autograd.grad(p, pts)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # every object's points influence object 0's relation through attention
    assert all(g[0, i].abs().sum() > 0 for i in range(3))


def test_fps_is_deterministic_and_spread():
    xyz = torch.rand(2, 100, 3, generator=torch.Generator().manual_seed(0))
    i1, i2 = farthest_point_sample(xyz, 10), farthest_point_sample(xyz, 10)
    assert torch.equal(i1, i2) and i1.shape == (2, 10)
    assert all(len(set(r.tolist())) == 10 for r in i1)


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Observation(torch.full((1, 2, 8, 3), float("nan")), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty"):
        Observation.from_clouds([torch.rand(5, 3).numpy(), torch.zeros(0, 3).numpy()], 8)


def test_tiny_model_overfits_tiny_dataset():
    torch.manual_seed(0)
    m = PointsToPlansModel(TINY)
    batch = synthetic_batch(n_transitions=6, seed=1)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for _ in range(250):
        losses = compute_losses(m, batch)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        first = first if first is not None else {k: float(v.detach()) for k, v in losses.items()}
    with torch.no_grad():
        last = {k: float(v) for k, v in compute_losses(m, batch).items()}
    assert last["total"] < 0.25 * first["total"], (first, last)
    assert last["prediction"] < 0.1 and last["detection"] < 0.1, last
    # next-step relations predicted from O_t and the skill match the ground truth
    m.eval()
    with torch.no_grad():
        obs = Observation(batch["points_t"], batch["mask"])
        rel = m.rollout(obs, [SkillBatch(batch["skill"], batch["target"], batch["params"])])[0]
    pm = (batch["mask"][:, :, None] & batch["mask"][:, None, :] & ~torch.eye(4, dtype=torch.bool))
    acc = ((rel.binary > 0.5)[pm] == (batch["binary_t1"][pm] > 0.5)).float().mean()
    assert acc >= 0.98, acc


def test_target_relations_option_feeds_dyn_the_decoded_relations_to_the_target():
    import dataclasses
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, target_relations=True)
    m = PointsToPlansModel(cfg).eval()
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    x = m.encode(Observation(torch.rand(1, 4, 32, 3), mask))
    t = 1
    with torch.no_grad():
        ctx = m.target_context(x, mask, torch.tensor([t]))
        for i in range(3):
            if i == t:   # the target itself: the flag only
                feat = torch.cat([torch.zeros(2 * len(BINARY_RELATIONS)), torch.ones(1)])
            else:
                feat = torch.cat([torch.sigmoid(m.dec_binary(torch.cat([x[0, i], x[0, t]]))),
                                  torch.sigmoid(m.dec_binary(torch.cat([x[0, t], x[0, i]]))), torch.zeros(1)])
            assert torch.allclose(ctx[0, i], m.target_proj(feat), atol=1e-6)
        assert torch.all(ctx[0, 3] == 0)                            # padded slot
        sk = SkillBatch(torch.tensor([0]), torch.tensor([t]), torch.tensor([[0.1, 0.2, 0.0]]))
        plain = PointsToPlansModel(TINY).eval()
        plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("target_proj")})
        assert not torch.allclose(m.delta(x, mask, sk), plain.delta(x, mask, sk))   # Dyn sees it
    # a config saved before the option existed loads with it off
    old = {k: v for k, v in TINY.to_json().items() if k != "target_relations"}
    assert ModelConfig.from_json(old).target_relations is False
