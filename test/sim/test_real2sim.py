"""Real2Sim (paper 000 §5.3, A.12): scene -> partial-view cloud -> Real2Sim -> same relations."""
import numpy as np
import pytest

from conftest import TABLE_TOP, cube, table
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, NoiseModel, observe
from f2p_sim.real2sim import apply_segment_offsets, scene_from_segments
from f2p_sim.scene import ObjectSpec, SceneError, SceneSpec


def round_trip_scene():
    floor = TABLE_TOP + 0.01
    return SceneSpec([
        table(),
        ObjectSpec("bin", "bin", (0.26, 0.3, 0.09), (0.5, 0.12, TABLE_TOP + 0.045)),
        cube("a", 0.5, 0.06, z_bottom=floor),
        cube("b", 0.5, 0.18, height=0.06, z_bottom=floor),
        cube("c", 0.62, -0.2),
        cube("d", 0.40, -0.2), cube("e", 0.45, -0.2),   # touching pair
        ObjectSpec("cab", "cabinet", (0.4, 0.35, 0.35), (0.5, 0.6, 0.175), drawer_opening=0.12),
    ])


def clouds_of(backend, cfg, camera="front", noise=None, rng=None):
    obs = observe(backend, Camera.from_config(cfg, camera), noise=noise, rng=rng)
    assert (obs.counts > 0).all(), obs.counts
    return [obs.segment_cloud(i) for i in range(len(obs.counts))]


@pytest.mark.parametrize("camera", ["front", "left_high"])
def test_round_trip_preserves_relations(cfg, camera):
    original = MujocoBackend(cfg)
    original.load(round_trip_scene())
    truth = original.relations()
    labels = [s.cls for s in original.segments]
    result = scene_from_segments(clouds_of(original, cfg, camera), labels, cfg)
    assert result.segment_map == list(range(len(labels)))
    rebuilt = MujocoBackend(cfg)
    rebuilt.load(result.scene)
    assert [s.cls for s in rebuilt.segments] == labels
    again = rebuilt.relations()
    assert again.literals() == truth.literals(), sorted(again.literals() ^ truth.literals())
    assert abs(rebuilt.drawer_openings()[8] - 0.12) < 0.015
    # Sizes come from the boxes: the hidden bottom of items in the bin was completed.
    assert np.allclose(result.scene.objects[2].size, [0.05, 0.05, 0.05], atol=0.01)


def test_round_trip_with_sensor_noise_keeps_the_scene_buildable(cfg):
    original = MujocoBackend(cfg)
    original.load(round_trip_scene())
    noise = NoiseModel(depth_std=0.002, point_std=0.001, dropout=0.2)
    clouds = clouds_of(original, cfg, noise=noise, rng=np.random.default_rng(0))
    result = scene_from_segments(clouds, [s.cls for s in original.segments], cfg)
    rebuilt = MujocoBackend(cfg)
    rebuilt.load(result.scene)
    rel = rebuilt.relations()
    assert rel.holds("inside", 2, 1) and rel.holds("inside", 3, 1) and rel.holds("above", 4, 0)


def test_segment_offsets_move_objects(cfg):
    original = MujocoBackend(cfg)
    original.load(round_trip_scene())
    clouds = clouds_of(original, cfg)
    offsets = np.zeros((len(clouds), 4))
    offsets[4] = [0.0, -0.12, 0.0, 0.3]      # move c towards the right edge, yawed
    moved = apply_segment_offsets(clouds, offsets)
    assert np.allclose(moved[4].mean(axis=0), clouds[4].mean(axis=0) + [0, -0.12, 0], atol=1e-9)
    scene = scene_from_segments(clouds, [s.cls for s in original.segments], cfg, offsets=offsets).scene
    assert scene.objects[4].pos[1] == pytest.approx(original.scene.objects[4].pos[1] - 0.12, abs=0.02)


def test_bad_real2sim_input_is_rejected(cfg):
    cloud = np.random.default_rng(0).uniform(0.4, 0.5, (50, 3))
    with pytest.raises(SceneError, match="unknown segment labels"):
        scene_from_segments([cloud], ["teapot"], cfg)
    with pytest.raises(SceneError, match="labels"):
        scene_from_segments([cloud], ["cuboid", "cup"], cfg)
    with pytest.raises(SceneError, match="no points"):
        scene_from_segments([np.zeros((0, 3))], ["cuboid"], cfg)
    with pytest.raises(SceneError, match="non-finite"):
        scene_from_segments([np.full((3, 3), np.nan)], ["cuboid"], cfg)
    with pytest.raises(SceneError, match="no cabinet"):
        scene_from_segments([cloud], ["drawer"], cfg)
    with pytest.raises(ValueError, match="offsets"):
        apply_segment_offsets([cloud], np.zeros((2, 3)))
