"""The Small / Large baselines' random data (f2p_learning.targeted.random_dataset): by default
the pre-training distribution (paper 000 §6), which never moves a loaded container."""
from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS
from f2p_learning.targeted import random_dataset
from f2p_sim.dataset import SimDataset

INSIDE = BINARY_RELATIONS.index("inside")


def _loaded_container_moves(folder) -> int:
    moves = 0
    for t in SimDataset(folder).transitions(skip_flags=0):
        if list(SKILLS)[int(t["skill"])] in ("pick_place", "push") and t["rel_t_binary"][:, int(t["target"]), INSIDE].any():
            moves += 1
    return moves


def test_random_dataset_defaults_to_the_pre_training_distribution(tmp_path):
    manifest = random_dataset(tmp_path / "pre", 8, seed=5, tasks=["transport"], object_counts=[3])
    assert manifest["params"]["hold_out_failure_modes"] is True
    assert manifest["params"]["steps_per_scene"] == 8
    assert len(SimDataset(tmp_path / "pre")) == 8
    assert _loaded_container_moves(tmp_path / "pre") == 0


def test_random_dataset_can_draw_the_tasks_own_distribution(tmp_path):
    # the large_task reference: the same seed and scenes, failure modes at their natural rate
    manifest = random_dataset(tmp_path / "task", 8, seed=5, tasks=["transport"], object_counts=[3],
                              hold_out_failure_modes=False)
    assert manifest["params"]["hold_out_failure_modes"] is False
    assert _loaded_container_moves(tmp_path / "task") > 0
