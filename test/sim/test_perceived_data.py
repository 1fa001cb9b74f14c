"""Data of what the robot perceives (issue 45 part 3): f2p_datasets.perceived, the datagen option
and the training loader's robot scene (f2p_training.transitions)."""
import numpy as np
import pytest

from f2p_common import dataset as ds
from f2p_common.interfaces import NO_OBJECT
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_datasets.perceived import PerceivedObserver, PerceptionParams, owners
from f2p_perception.segmentation import point_indices
from f2p_sim.config import load_world_config
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, NoiseModel, observe
from f2p_sim.tasks import make_task
from f2p_training.transitions import load_transitions, robot_scene


def test_point_indices_find_a_segments_points_in_its_frame_and_nothing_else():
    cloud = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    cloud[5] = np.nan
    a, b, c = point_indices(cloud, [cloud[[3, 999, 0]], np.array([[9.0, 9.0, 9.0]]), np.zeros((0, 3))])
    assert a.tolist() == [3, 999, 0] and b.tolist() == [-1] and c.size == 0
    assert point_indices(np.zeros((0, 3)), [cloud[:2]])[0].tolist() == [-1, -1]


def test_each_object_gets_the_segment_mostly_its_own_and_a_merged_one_none():
    instance = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, NO_OBJECT, NO_OBJECT, 0])
    segments = [np.array([0, 1, 2]),            # most of object 0
                np.array([3, 11]),              # a fragment of object 0: left out
                np.array([4, 5, 6, 7]),         # object 1 read with object 2 (e.g. a bin and its item)
                np.array([9, 10])]              # the floor: nobody's
    assert owners(instance, segments, 3).tolist() == [0, 2, -1]
    assert owners(instance, [], 2).tolist() == [-1, -1]


def test_the_perceived_view_of_a_scene_follows_its_objects_with_the_robots_segments():
    cfg = load_world_config()
    backend = MujocoBackend(cfg)
    backend.load(make_task("transport", 3, 5, cfg).scene)
    camera = Camera.from_config(cfg, "front")
    observer = PerceivedObserver(PerceptionParams("geometric"), NoiseModel(0.0, 0.0, 0.0))
    seen = observer.observe(backend, camera, np.random.default_rng(0), 64)
    truth = observe(backend, camera, points_per_segment=64)
    assert seen.points.shape == truth.points.shape == (len(backend.segments), 64, 3)
    names = [s.name for s in backend.segments]
    assert (seen.counts[[names.index("table_a"), names.index("container")]] > 0).all()
    # Every object the robot segmented is where the simulator has it: its points are its own
    # (or its neighbours', read with it), inside the scene's boxes, never made up.
    state = backend.segment_state()
    for i in np.flatnonzero(seen.counts):
        centre = seen.points[i].mean(axis=0)
        assert np.all(centre >= state.box_lower.min(axis=0) - 0.05) and np.all(centre <= state.box_upper.max(axis=0) + 0.05)
        own = seen.raw_points[seen.raw_segments == i]
        assert len(own) == seen.counts[i]
    item = names.index("item_0")
    if seen.counts[item]:
        np.testing.assert_allclose(seen.points[item].mean(axis=0), truth.points[item].mean(axis=0), atol=0.03)


def test_a_perceived_dataset_records_its_backend_and_trains_on_the_robots_scene(tmp_path):
    small = dict(transitions=4, shard_size=4, steps_per_scene=2, points_per_segment=32, tasks=("transport",),
                 object_counts=(3,), depth_std=0.004, point_std=0.002, dropout=0.1)
    folder = tmp_path / "perceived"
    result = generate(DatagenConfig(folder, DatagenParams(seed=1, perception="geometric", **small), workers=1,
                                    progress=False))
    assert result.manifest["params"]["perception"] == "geometric"
    arrays = ds.read_shard(folder / "shard_00000.npz")
    assert (arrays["obs_t_counts"][:, :2] > 0).all()          # the tables are always perceived
    with pytest.raises(ValueError, match="other parameters"):   # simulator segments cannot resume it
        generate(DatagenConfig(folder, DatagenParams(seed=1, **small), workers=1, progress=False))
    with pytest.raises(ValueError, match="depth cloud"):
        generate(DatagenConfig(tmp_path / "x", DatagenParams(perception="yolo_seg", **small), workers=1, progress=False))
    data = load_transitions([folder], 16, 8, 0, keep_unseen_after=True)
    assert 0 < len(data["mask"]) <= 4 and data["mask"].any(axis=1).all()


def test_the_robots_scene_leaves_out_what_it_did_not_perceive():
    n = 4
    tr = {"obs_t_counts": np.array([10, 0, 5, 7]), "obs_t1_counts": np.array([10, 3, 0, 7]),
          "obs_t_points": np.arange(n)[:, None, None] * np.ones((n, 2, 3)), "seg_class": np.array([0, 1, 2, 3]),
          "rel_t_binary": np.arange(n * n).reshape(n, n, 1), "state_t_pose": np.eye(n, 7), "target": 2,
          "skill": 0, "scene": {"segments": ["a", "b", "c", "d"]}}
    out = robot_scene(tr)
    assert out["seg_class"].tolist() == [0, 2, 3] and out["target"] == 1
    assert out["rel_t_binary"][:, :, 0].tolist() == [[0, 2, 3], [8, 10, 11], [12, 14, 15]]
    assert out["obs_t1_counts"].tolist() == [10, 0, 7] and out["scene"] is tr["scene"]
    assert robot_scene(dict(tr, target=1)) is None                # its target unseen: no transition
    assert robot_scene(dict(tr, obs_t_counts=np.ones(n))) is not None
