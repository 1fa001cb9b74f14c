"""Ψ(s): ray-cast partial-view segmented clouds, cameras and the noise model (paper 000 Fig. 3b)."""
import numpy as np
import pytest

from conftest import bin_with_items
from f2p_sim.observation import Camera, NoiseModel, observe, render_images


def test_clouds_are_partial_segmented_and_fixed_size(backend, cfg):
    backend.load(bin_with_items())
    cam = Camera.from_config(cfg, "front")
    obs = observe(backend, cam, points_per_segment=128)
    assert obs.points.shape == (5, 128, 3) and (obs.counts > 0).all()
    assert obs.num_points >= 2000
    st = backend.segment_state()
    for i in range(5):  # every point of a segment lies on (the box of) that segment
        pts = obs.segment_cloud(i)
        assert (pts >= st.box_lower[i] - 1e-4).all() and (pts <= st.box_upper[i] + 1e-4).all()
    # Partial view: the cube's far (+x) face and bottom are never seen.
    cube = obs.segment_cloud(4)
    assert cube[:, 2].min() > st.box_lower[4, 2] - 1e-4 and np.isclose(cube[:, 2].max(), st.box_upper[4, 2], atol=1e-4)


def test_viewpoints_differ_and_are_deterministic(backend, cfg):
    backend.load(bin_with_items())
    clouds = {n: observe(backend, Camera.from_config(cfg, n)) for n in ("front", "left_high", "right_low")}
    assert not np.allclose(clouds["front"].points, clouds["left_high"].points)
    again = observe(backend, Camera.from_config(cfg, "front"))
    assert np.array_equal(again.points, clouds["front"].points)


def test_noise_model(backend, cfg):
    backend.load(bin_with_items())
    cam = Camera.from_config(cfg, "front")
    clean = observe(backend, cam)
    noisy = observe(backend, cam, NoiseModel(depth_std=0.0, point_std=0.0, dropout=0.5), np.random.default_rng(0))
    assert 0.4 < noisy.num_points / clean.num_points < 0.6
    jitter = observe(backend, cam, NoiseModel(point_std=0.003), np.random.default_rng(0))
    assert jitter.num_points == clean.num_points
    assert 0.002 < np.std(jitter.raw_points - clean.raw_points) < 0.004
    a = observe(backend, cam, NoiseModel(depth_std=0.005, dropout=0.1), np.random.default_rng(1))
    b = observe(backend, cam, NoiseModel(depth_std=0.005, dropout=0.1), np.random.default_rng(1))
    assert np.array_equal(a.points, b.points)
    with pytest.raises(ValueError, match="rng"):
        observe(backend, cam, NoiseModel(point_std=0.01))
    with pytest.raises(ValueError):
        NoiseModel(dropout=1.0)


def test_camera_validation(cfg):
    with pytest.raises(ValueError, match="unknown camera"):
        Camera.from_config(cfg, "ceiling")
    with pytest.raises(ValueError, match="fovy"):
        Camera("c", (0, 0, 1), (1, 0, 0), 0.0, 64, 48)
    with pytest.raises(ValueError, match="distinct"):
        Camera("c", (0, 0, 1), (0, 0, 1), 60.0, 64, 48)
    cam = Camera("c", (0, 0, 1), (1, 0, 1), 60.0, 64, 48)
    uv = cam.project(np.array([[1.0, 0.0, 1.0]]))
    assert np.allclose(uv, [[32, 24]])


def test_rendered_images_when_gl_exists(backend, cfg):
    backend.load(bin_with_items())
    cam = Camera.from_config(cfg, "front", width=64, height=48)
    try:
        images = render_images(backend, cam)
    except RuntimeError as e:
        pytest.skip(str(e))
    assert images["rgb"].shape == (48, 64, 3) and images["depth"].shape == (48, 64)


def test_rendering_then_training_share_a_process():
    # Regression: Mesa's EGL (LLVM) loaded before triton made torch segfault on Adam().
    # A fresh interpreter reproduces the order a demo uses: render first, then train.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import torch
        from f2p_sim.config import load_world_config
        from f2p_sim.mujoco_backend import MujocoBackend
        from f2p_sim.observation import Camera, render_images
        from f2p_sim.scene import ObjectSpec, SceneSpec
        cfg = load_world_config()
        b = MujocoBackend(cfg)
        b.load(SceneSpec([ObjectSpec("table", "table", (0.6, 0.8, 0.45), (0.55, 0.0, 0.225)),
                          ObjectSpec("a", "cuboid", (0.05, 0.05, 0.05), (0.55, 0.0, 0.475))]))
        render_images(b, Camera.from_config(cfg, "front", width=32, height=24))
        torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
