"""Dataset generation: byte-for-byte determinism, resume, loader, flags (f2p_datasets.datagen,
f2p_common.dataset)."""
import json

import numpy as np
import pytest

from f2p_common import dataset as ds
from f2p_datasets.datagen import DatagenConfig, DatagenParams, config_from_args, generate, main

SMALL = dict(transitions=12, shard_size=6, steps_per_scene=3, points_per_segment=64)


def files_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_dataset_byte_for_byte(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(DatagenConfig(a, DatagenParams(seed=7, **SMALL), workers=1, progress=False))
    generate(DatagenConfig(b, DatagenParams(seed=7, **SMALL), workers=2, progress=False))  # worker count does not matter
    assert files_bytes(a) == files_bytes(b)
    c = tmp_path / "c"
    generate(DatagenConfig(c, DatagenParams(seed=8, **SMALL), workers=1, progress=False))
    assert files_bytes(a)["shard_00000.npz"] != files_bytes(c)["shard_00000.npz"]


def test_resume_skips_complete_shards_and_redoes_truncated_ones(tmp_path):
    folder = tmp_path / "d"
    generate(DatagenConfig(folder, DatagenParams(seed=3, **SMALL), workers=1, progress=False))
    reference = files_bytes(folder)
    (folder / "manifest.json").unlink()
    shard1 = folder / "shard_00001.npz"
    shard1.write_bytes(shard1.read_bytes()[:1000])  # a crash mid-write of an old-style file
    generate(DatagenConfig(folder, DatagenParams(seed=3, **SMALL), workers=1, progress=False))
    assert files_bytes(folder) == reference
    with pytest.raises(ValueError, match="other parameters"):
        generate(DatagenConfig(folder, DatagenParams(seed=4, **SMALL), workers=1, progress=False))


def test_loader_reads_transitions_with_relations_and_clouds(tmp_path):
    generate(DatagenConfig(tmp_path, DatagenParams(seed=5, **SMALL), workers=1, progress=False))
    data = ds.SimDataset(tmp_path, verify=True)
    assert len(data) == 12
    everything = list(data.transitions(skip_flags=0))
    assert len(everything) == 12
    kept = list(data.transitions())
    assert len(kept) + data.skipped_flagged == 12
    for tr in everything:
        n = len(tr["scene"]["segments"])
        assert tr["obs_t_points"].shape == (n, 64, 3) and tr["obs_t1_points"].shape == (n, 64, 3)
        assert tr["rel_t_binary"].shape == (n, n, 9) and tr["rel_t1_unary"].shape == (n, 3)
        assert np.isfinite(tr["obs_t_points"]).all()
        if not tr["flags"] & ds.FLAG_UNSEEN_SEGMENT:
            assert (tr["obs_t_counts"] > 0).all()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == ds.FORMAT and manifest["vocabulary"]["binary"][-1] == "inside"


def test_corrupt_shard_is_reported(tmp_path):
    generate(DatagenConfig(tmp_path, DatagenParams(seed=5, **SMALL), workers=1, progress=False))
    (tmp_path / "shard_00000.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checksum"):
        ds.SimDataset(tmp_path, verify=True)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        list(ds.SimDataset(tmp_path).transitions())


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--transitions", "0", "--no-progress"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "y"), "--dropout", "1.5", "--no-progress"]) == 2


def test_generate_reports_what_it_did_and_the_command_line_builds_the_same_config(tmp_path):
    first = generate(DatagenConfig(tmp_path / "d", DatagenParams(seed=2, **SMALL), workers=1, progress=False))
    assert (first.transitions, first.generated_shards, first.reused_shards) == (12, 2, 0)
    again = generate(DatagenConfig(tmp_path / "d", DatagenParams(seed=2, **SMALL), workers=1, progress=False))
    assert (again.generated_shards, again.reused_shards) == (0, 2) and again.manifest == first.manifest
    cfg = config_from_args(["--out", str(tmp_path / "e"), "--transitions", "12", "--shard-size", "6",
                            "--steps-per-scene", "3", "--points-per-segment", "64", "--seed", "2", "--workers", "1",
                            "--hold-out-failure-modes"])
    assert cfg.params == DatagenParams(seed=2, hold_out_failure_modes=True, **SMALL) and cfg.workers == 1


def test_the_layout_is_part_of_the_dataset_and_older_folders_still_resume(tmp_path):
    folder = tmp_path / "real"
    small = dict(SMALL, transitions=6)
    result = generate(DatagenConfig(folder, DatagenParams(seed=2, layout="real_scale", **small), workers=1,
                                    progress=False))
    assert result.manifest["params"]["layout"] == "real_scale"
    assert result.manifest["world_config"]["layout"] == "real_scale"
    tables = [o for s in ds.scenes_of(ds.read_shard(folder / "shard_00000.npz"))
              for o in s["scene"]["objects"] if o["cls"] == "table"]
    assert tables and any(abs(t["size"][1] - 0.5) > 0.01 for t in tables)
    with pytest.raises(ValueError, match="other parameters"):           # a paper run cannot resume it
        generate(DatagenConfig(folder, DatagenParams(seed=2, **small), workers=1, progress=False))
    with pytest.raises(ValueError, match="unknown layout 'moon'"):
        generate(DatagenConfig(tmp_path / "x", DatagenParams(layout="moon", **small), workers=1, progress=False))
    # A folder made before layouts existed (no "layout" in params.json) resumes as paper.
    old = tmp_path / "old"
    generate(DatagenConfig(old, DatagenParams(seed=2, **small), workers=1, progress=False))
    record = json.loads((old / "params.json").read_text())
    del record["layout"]
    (old / "params.json").write_text(json.dumps(record))
    assert generate(DatagenConfig(old, DatagenParams(seed=2, **small), workers=1, progress=False)).reused_shards == 1
