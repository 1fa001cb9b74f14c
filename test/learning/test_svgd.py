"""Stein variational gradient descent (paper 000 §5.2, A.13.3): bandwidth, direction, runs, failures."""
import math

import pytest
import torch

from f2p_learning.svgd import SVGDDivergedError, median_bandwidth, run_svgd, stein_direction



def std_normal_log_prob(x):
    return -0.5 * x.pow(2).sum(-1)


def start_at_five(m=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 5.0 + 0.1 * torch.randn(m, 1, generator=gen)


# ------------------------------------------------------------------ bandwidth and direction
def test_median_bandwidth_by_hand():
    # pairwise squared distances: (0,1) 1, (0,3) 9, (1,3) 4 -> median 4
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    assert median_bandwidth(x).item() == pytest.approx(4.0 / math.log(4))
    # 2-D: squared distances 9, 16, 25 -> median 16 (order of the points does not matter)
    y = torch.tensor([[0.0, 4.0], [0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    assert median_bandwidth(y).item() == pytest.approx(16.0 / math.log(4))
    assert median_bandwidth(y.flip(0)).item() == pytest.approx(16.0 / math.log(4))
    # M = 5 (10 pairs, the log(M + 1) factor changes with M): points on a line at 0..4
    z = torch.arange(5, dtype=torch.float64)[:, None]
    d2 = sorted(float((i - j) ** 2) for i in range(5) for j in range(i + 1, 5))
    assert d2 == [1, 1, 1, 1, 4, 4, 4, 9, 9, 16]
    assert median_bandwidth(z).item() == pytest.approx(4 / math.log(6))


def test_median_bandwidth_edge_cases():
    assert median_bandwidth(torch.zeros(1, 3)).item() == 1.0           # a single particle
    assert median_bandwidth(torch.ones(5, 2)).item() == pytest.approx(1e-8)  # all identical: floor


def test_stein_direction_matches_the_formula():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    g = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    h = torch.tensor(0.7, dtype=torch.float64)
    want = torch.zeros_like(x)
    for i in range(5):
        for j in range(5):
            k = torch.exp(-((x[j] - x[i]) ** 2).sum() / h)
            want[i] += k * g[j] - 2.0 / h * k * (x[j] - x[i])   # k ∇log p + ∇_{x_j} k(x_j, x_i)
    want /= 5
    assert torch.allclose(stein_direction(x, g, h), want, atol=1e-12)
    # without a bandwidth it uses the median heuristic
    assert torch.allclose(stein_direction(x, g), stein_direction(x, g, median_bandwidth(x)), atol=1e-12)


# ------------------------------------------------------------------ runs
def test_svgd_recovers_a_standard_normal():
    res = run_svgd(std_normal_log_prob, start_at_five(), steps=300, lr=0.1)
    x = res.particles[:, 0]
    assert abs(x.mean().item()) < 0.3
    assert 0.6 < x.std().item() < 1.4
    assert res.particles.shape == (30, 1) and not res.particles.requires_grad
    assert res.log_prob.shape == (30,)
    assert torch.allclose(res.log_prob, std_normal_log_prob(res.particles))
    assert len(res.history) == 300
    assert [h["step"] for h in res.history[:3]] == [0, 1, 2]
    assert res.history[-1]["log_prob_mean"] > res.history[0]["log_prob_mean"]
    assert all(h["bandwidth"] > 0 for h in res.history)
    assert res.seconds > 0


def test_without_kernel_particles_collapse_on_the_mode():
    res = run_svgd(std_normal_log_prob, start_at_five(), steps=300, lr=0.1, kernel=False)
    x = res.particles[:, 0]
    assert abs(x.mean().item()) < 0.3
    assert x.std().item() < 0.1


def test_run_does_not_modify_the_initial_particles():
    x0 = start_at_five(m=4)
    before = x0.clone()
    run_svgd(std_normal_log_prob, x0, steps=3, lr=0.1)
    assert torch.equal(x0, before)


def test_project_and_at_bound():
    calls = []
    lo, hi = -1.0, 0.5

    def project(x):
        calls.append(1)
        return x.clamp(lo, hi)

    def at_bound(x):
        return ((x <= lo) | (x >= hi)).any(-1)

    # log p pulls everything to +3, outside the box: projected particles end on the upper
    # bound (kernel=False: no repulsion holding some of them back)
    x0 = torch.linspace(-0.9, 0.4, 6)[:, None]
    res = run_svgd(lambda x: -0.5 * (x - 3.0).pow(2).sum(-1), x0, steps=40, lr=0.2, kernel=False,
                   project=project, at_bound=at_bound)
    assert len(calls) == 40
    assert (res.particles >= lo).all() and (res.particles <= hi).all()
    assert torch.allclose(res.particles, torch.full_like(res.particles, hi))
    assert all("at_bound" in h for h in res.history)
    assert res.history[-1]["at_bound"] == 6
    assert 0 <= res.history[0]["at_bound"] < 6
    # with the kernel, the clamp still holds every particle inside the box
    res_k = run_svgd(lambda x: -0.5 * (x - 3.0).pow(2).sum(-1), x0, steps=40, lr=0.2,
                     project=lambda x: x.clamp(lo, hi), at_bound=at_bound)
    assert (res_k.particles >= lo).all() and (res_k.particles <= hi).all()
    assert res_k.history[-1]["at_bound"] == int(at_bound(res_k.particles).sum())
    # no at_bound callback: no entry
    res2 = run_svgd(std_normal_log_prob, x0, steps=2, lr=0.1)
    assert all("at_bound" not in h for h in res2.history)


def test_progress_callback_sees_every_step():
    seen = []
    run_svgd(std_normal_log_prob, start_at_five(m=3), steps=4, lr=0.1, progress=lambda s, rec: seen.append((s, rec["step"])))
    assert seen == [(0, 0), (1, 1), (2, 2), (3, 3)]


# ------------------------------------------------------------------ failures
def test_nan_log_prob_raises():
    def one_nan(x):
        out = std_normal_log_prob(x)
        return torch.cat([out[:1], out[1:2] * float("nan"), out[2:]])
    with pytest.raises(SVGDDivergedError, match=r"non-finite at step 0 \(1 of 5 particles\)"):
        run_svgd(one_nan, start_at_five(m=5), steps=3, lr=0.1)


def test_nan_appearing_later_names_its_step():
    # finite until a particle goes below 4.5 (it gets there after a few Adam steps of lr 0.2)
    def lp(x):
        out = std_normal_log_prob(x)
        return torch.where(x[:, 0] < 4.5, torch.full_like(out, float("inf")), out)
    with pytest.raises(SVGDDivergedError, match=r"step [1-9]"):
        run_svgd(lp, start_at_five(m=5), steps=20, lr=0.2)


def test_non_finite_gradient_raises():
    # sqrt(|x|) at 0: finite value, NaN gradient
    with pytest.raises(SVGDDivergedError, match="gradient"):
        run_svgd(lambda x: x.sum(-1).abs().sqrt(), torch.zeros(4, 2), steps=2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_initial_particles_raise(bad):
    x0 = torch.zeros(4, 2)
    x0[2, 1] = bad
    with pytest.raises(SVGDDivergedError, match="initial"):
        run_svgd(std_normal_log_prob, x0, steps=2)


def test_projection_to_nan_raises():
    with pytest.raises(SVGDDivergedError, match="particles became non-finite at step 0"):
        run_svgd(std_normal_log_prob, torch.zeros(3, 1), steps=2, project=lambda x: x * float("nan"))


@pytest.mark.parametrize("log_prob", [
    lambda x: -0.5 * x.pow(2),                        # (M, D) instead of (M,)
    lambda x: -0.5 * x.pow(2).sum(),                   # scalar
    lambda x: -0.5 * x.pow(2).sum(-1)[:-1],            # one short
])
def test_wrong_log_prob_shape_raises(log_prob):
    with pytest.raises(ValueError, match="log_prob must return"):
        run_svgd(log_prob, torch.randn(4, 2, generator=torch.Generator().manual_seed(0)), steps=2)


@pytest.mark.parametrize("x0", [torch.zeros(4), torch.zeros(0, 2), torch.zeros(2, 2, 2)])
def test_bad_particle_shape_raises(x0):
    with pytest.raises(ValueError, match="particles must be"):
        run_svgd(std_normal_log_prob, x0, steps=2)
