"""Dataset generation: byte-for-byte determinism, resume, loader, flags (f2p_sim.datagen/dataset)."""
import json

import numpy as np
import pytest

from f2p_sim import dataset as ds
from f2p_sim.datagen import DatagenParams, generate, main

SMALL = dict(transitions=12, shard_size=6, steps_per_scene=3, points_per_segment=64)


def files_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_dataset_byte_for_byte(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(DatagenParams(seed=7, **SMALL), a, workers=1, progress=False)
    generate(DatagenParams(seed=7, **SMALL), b, workers=2, progress=False)  # worker count does not matter
    assert files_bytes(a) == files_bytes(b)
    c = tmp_path / "c"
    generate(DatagenParams(seed=8, **SMALL), c, workers=1, progress=False)
    assert files_bytes(a)["shard_00000.npz"] != files_bytes(c)["shard_00000.npz"]


def test_resume_skips_complete_shards_and_redoes_truncated_ones(tmp_path):
    folder = tmp_path / "d"
    generate(DatagenParams(seed=3, **SMALL), folder, workers=1, progress=False)
    reference = files_bytes(folder)
    (folder / "manifest.json").unlink()
    shard1 = folder / "shard_00001.npz"
    shard1.write_bytes(shard1.read_bytes()[:1000])  # a crash mid-write of an old-style file
    generate(DatagenParams(seed=3, **SMALL), folder, workers=1, progress=False)
    assert files_bytes(folder) == reference
    with pytest.raises(ValueError, match="other parameters"):
        generate(DatagenParams(seed=4, **SMALL), folder, workers=1, progress=False)


def test_loader_reads_transitions_with_relations_and_clouds(tmp_path):
    generate(DatagenParams(seed=5, **SMALL), tmp_path, workers=1, progress=False)
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
    generate(DatagenParams(seed=5, **SMALL), tmp_path, workers=1, progress=False)
    (tmp_path / "shard_00000.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checksum"):
        ds.SimDataset(tmp_path, verify=True)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        list(ds.SimDataset(tmp_path).transitions())


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--transitions", "0", "--no-progress"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "y"), "--dropout", "1.5", "--no-progress"]) == 2


def _rim_landings(backend, table_edge_fraction, draws=200, seed=0):
    """Pick-and-place landings (target's centre + (dx, dy)) in a table's rim band: outside the
    central 40 % that targeted placements aim at, within TABLE_EDGE_BAND past the edge."""
    from f2p_sim.datagen import TABLE_EDGE_BAND, sample_action
    rng = np.random.default_rng(seed)
    st = backend.segment_state()
    tables = [j for j, s in enumerate(backend.segments) if s.cls == "table"]
    rim = 0
    for _ in range(draws):
        skill, target, a = sample_action(rng, backend, 1.0, False, table_edge_fraction)
        if skill != "pick_place":
            continue
        xy = 0.5 * (st.box_lower[target, :2] + st.box_upper[target, :2]) + np.asarray(a[:2])
        for j in tables:
            lo, hi = st.box_lower[j, :2], st.box_upper[j, :2]
            inner = (xy > lo + 0.3 * (hi - lo)) & (xy < hi - 0.3 * (hi - lo))
            rim += bool(np.all((xy > lo - TABLE_EDGE_BAND) & (xy < hi + TABLE_EDGE_BAND)) and not inner.all())
    return rim


def test_table_edge_fraction_aims_placements_over_the_rim_and_zero_keeps_the_old_stream(backend, cfg, tmp_path):
    from f2p_sim.datagen import sample_action
    from f2p_sim.tasks import make_task
    backend.load(make_task("organize", 3, 5, cfg).scene)
    # 0 is the stream drawn before the option existed
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    assert [sample_action(r1, backend, 0.6, True) for _ in range(30)] == \
           [sample_action(r2, backend, 0.6, True, 0.0) for _ in range(30)]
    central, edges = _rim_landings(backend, 0.0), _rim_landings(backend, 1.0)
    assert edges >= 40 and central <= edges // 4
    # recorded in the parameters only when used, so folders made before the option still resume
    generate(DatagenParams(seed=1, **SMALL), tmp_path / "a", workers=1, progress=False)
    assert "table_edge_fraction" not in json.loads((tmp_path / "a" / "params.json").read_text())
    generate(DatagenParams(seed=1, table_edge_fraction=0.5, **SMALL), tmp_path / "b", workers=1, progress=False)
    assert json.loads((tmp_path / "b" / "params.json").read_text())["table_edge_fraction"] == 0.5
    with pytest.raises(ValueError, match="table_edge_fraction"):
        DatagenParams(table_edge_fraction=1.5).validate()
