"""f2p-train on a tiny synthetic dataset written in the f2p_sim format: runs, is
deterministic with --seed, writes a loadable checkpoint; fine-tuning records its parent."""
import json

import numpy as np
import torch

from f2p_sim.dataset import FLAG_UNSEEN_SEGMENT, FORMAT, shard_name, write_manifest, write_shard
from f2p_skill_effect.checkpoint import load_checkpoint, load_model
from f2p_skill_effect.train import main

from conftest import TINY, synthetic_batch


def _write_dataset(folder, seed, unseen=()):
    """A synthetic dataset; ``unseen``: (transition, "t" or "t1", segment) that got no points there
    (flagged FLAG_UNSEEN_SEGMENT, as datagen flags them)."""
    b = {k: v.numpy() for k, v in synthetic_batch(n_transitions=8, n_objects=3, n_points=32, seed=seed, max_objects=3).items()}
    T = b["mask"].shape[0]
    counts = {"t": np.full((T, 3), 32, np.int32), "t1": np.full((T, 3), 32, np.int32)}
    flags = np.zeros(T, np.uint8)
    for row, when, seg in unseen:
        counts[when][row, seg] = 0
        b["points_" + when][row, seg] = 0.0
        flags[row] |= FLAG_UNSEEN_SEGMENT
    pose = lambda p: np.concatenate([p, np.tile([1, 0, 0, 0], (T, 3, 1))], -1).astype(np.float32)
    arrays = {
        "scene_index": np.zeros(T, np.int32), "step": np.zeros(T, np.int16),
        "seg_class": np.full((T, 3), 7, np.int8), "skill": b["skill"].astype(np.int8),
        "target": b["target"].astype(np.int16), "params": b["params"],
        "obs_t_points": b["points_t"], "obs_t1_points": b["points_t1"],
        "state_t_pose": pose(b["pos_t"]), "state_t1_pose": pose(b["pos_t1"]),
        "rel_t_unary": b["unary_t"].astype(np.uint8), "rel_t1_unary": b["unary_t1"].astype(np.uint8),
        "rel_t_binary": b["binary_t"].astype(np.uint8), "rel_t1_binary": b["binary_t1"].astype(np.uint8),
        "flags": flags, "obs_t_counts": counts["t"], "obs_t1_counts": counts["t1"],
        "scenes_json": np.frombuffer(json.dumps([{"task": "synthetic"}]).encode(), np.uint8),
    }
    folder.mkdir()
    sha = write_shard(folder / shard_name(0), arrays)
    write_manifest(folder, {"format": FORMAT, "shards": [{"file": shard_name(0), "transitions": T,
                                                           "flagged": int((flags > 0).sum()), "sha256": sha}]})
    return folder


TINY_JSON = json.dumps({k: v for k, v in TINY.to_json().items() if k not in ("unary", "binary", "skills")})


def test_pretrain_then_finetune(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d", 1)
    args = ["--data", str(data), "--epochs", "3", "--lr", "3e-3", "--points", "32", "--batch-size", "4",
            "--val-fraction", "0.25", "--seed", "0", "--config-json", TINY_JSON, "--version", "v1"]
    assert main(args + ["--out", str(tmp_path / "a.pt")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.pt")]) == 0
    out = capsys.readouterr().out
    assert "epoch 3/3" in out and "wrote" in out
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)   # --seed: repeatable
    assert a.config == TINY and a.training_data["transitions"] == 8 and len(a.metrics["history"]) == 3
    new = _write_dataset(tmp_path / "d_plus", 2)
    assert main(["--data", str(new), "--init-checkpoint", str(tmp_path / "a.pt"), "--epochs", "2",
                 "--points", "32", "--replay-data", str(data), "--replay-fraction", "0.5",
                 "--out", str(tmp_path / "c.pt"), "--version", "v2", "--quiet"]) == 0
    model, c = load_model(tmp_path / "c.pt", expected_config=TINY)
    assert c.parent_version == "v1" and c.version == "v2" and c.training_data["replay_fraction"] == 0.5


def _arrays(b, n, max_objects, seed):
    """Padded training arrays (train.KEYS) with n real objects of distinct values per slot."""
    rng = np.random.default_rng(seed)
    a = {"points_t": rng.normal(size=(b, max_objects, 4, 3)), "points_t1": rng.normal(size=(b, max_objects, 4, 3)),
         "unary_t": rng.normal(size=(b, max_objects, 3)), "unary_t1": rng.normal(size=(b, max_objects, 3)),
         "binary_t": rng.normal(size=(b, max_objects, max_objects, 9)),
         "binary_t1": rng.normal(size=(b, max_objects, max_objects, 9)),
         "pos_t": rng.normal(size=(b, max_objects, 3)), "pos_t1": rng.normal(size=(b, max_objects, 3)),
         "skill": np.zeros(b, np.int64), "target": rng.integers(0, n, b), "params": rng.normal(size=(b, 3))}
    a["mask"] = np.zeros((b, max_objects), bool)
    a["mask"][:, :n] = True
    return a


def test_relabel_objects_permutes_real_slots_consistently():
    from f2p_skill_effect.train import relabel_objects
    a = _arrays(4, 3, 5, seed=0)
    rows = np.array([True, False, True, True])
    out = relabel_objects(a, rows, np.random.default_rng(0))
    moved = 0
    for b in range(4):
        # where did old slot k go? (each slot's cloud is unique)
        where = [int(np.flatnonzero((out["points_t"][b] == a["points_t"][b, k]).all((1, 2)))[0]) for k in range(5)]
        assert sorted(where) == list(range(5))
        assert where[3:] == [3, 4]                                   # padding stays put
        assert sorted(where[:3]) == [0, 1, 2]                        # real objects stay in real slots
        assert np.array_equal(out["mask"][b], a["mask"][b])
        assert out["target"][b] == where[a["target"][b]]
        for k in ("points_t1", "unary_t", "unary_t1", "pos_t", "pos_t1"):
            assert all(np.array_equal(out[k][b, where[i]], a[k][b, i]) for i in range(5))
        for k in ("binary_t", "binary_t1"):
            assert all(np.array_equal(out[k][b, where[i], where[j]], a[k][b, i, j]) for i in range(5) for j in range(5))
        assert np.array_equal(out["params"][b], a["params"][b])
        if not rows[b]:
            assert where == list(range(5))
        moved += where != list(range(5))
    assert moved >= 2                                               # some permutation was not the identity
    assert np.array_equal(a["target"], _arrays(4, 3, 5, seed=0)["target"])   # the input is not modified


def test_relabel_objects_flag_is_recorded_and_changes_training(tmp_path):
    data = _write_dataset(tmp_path / "d", 1)
    args = ["--data", str(data), "--epochs", "2", "--lr", "3e-3", "--points", "32", "--batch-size", "4",
            "--val-fraction", "0.25", "--seed", "0", "--config-json", TINY_JSON, "--quiet"]
    assert main(args + ["--out", str(tmp_path / "plain.pt")]) == 0
    assert main(args + ["--out", str(tmp_path / "r1.pt"), "--relabel-objects"]) == 0
    assert main(args + ["--out", str(tmp_path / "r2.pt"), "--relabel-objects"]) == 0
    plain, r1, r2 = (load_checkpoint(tmp_path / f) for f in ("plain.pt", "r1.pt", "r2.pt"))
    assert plain.training_data["relabel_objects"] is False and r1.training_data["relabel_objects"] is True
    assert all(torch.equal(r1.state_dict[k], r2.state_dict[k]) for k in r1.state_dict)       # seeded
    assert any(not torch.equal(plain.state_dict[k], r1.state_dict[k]) for k in r1.state_dict)


def test_log_every_prints_every_nth_epoch_and_the_last(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d", 1)
    assert main(["--data", str(data), "--epochs", "5", "--points", "32", "--batch-size", "4", "--val-fraction", "0",
                 "--seed", "0", "--config-json", TINY_JSON, "--log-every", "2", "--out", str(tmp_path / "m.pt")]) == 0
    epochs = [line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("[f2p-train] epoch")]
    assert epochs == ["2/5", "4/5", "5/5"]


def _target_rows(model, batch, params):
    """Γ's predicted relations of each transition's target (its binary row, unary) after ``params``."""
    from f2p_skill_effect.model import Observation, SkillBatch
    with torch.no_grad():
        x = model.encode(Observation(batch["points_t"], batch["mask"]))
        u, b = model.relation_logits(model.step(x, batch["mask"], SkillBatch(batch["skill"], batch["target"], params)))
    rows = torch.arange(len(batch["target"]))
    return torch.sigmoid(b[rows, batch["target"]]), torch.sigmoid(u[rows, batch["target"]])


def test_placement_anchor_loss_is_stationary_at_the_parent_and_pulls_a_drifted_child_back():
    import copy
    from f2p_skill_effect.model import build_model, compute_losses
    from f2p_skill_effect.train import placement_anchor_loss
    torch.manual_seed(0)
    parent = build_model(TINY).eval()
    batch = synthetic_batch(n_transitions=6, seed=3)
    child = copy.deepcopy(parent)
    _, x_t = compute_losses(child, batch, return_latent=True)
    placement_anchor_loss(child, parent, batch, x_t, torch.Generator().manual_seed(0)).backward()
    # BCE to the parent's own probabilities: its gradient vanishes where child = parent
    assert max(float(p.grad.abs().max()) for p in child.parameters() if p.grad is not None) < 1e-6
    assert all(p.grad is None for p in parent.parameters())
    with torch.no_grad():                       # a drifted child: the term is larger and has a gradient
        child.dec_binary[-1].bias += 2.0
    child.zero_grad()
    _, x_t = compute_losses(child, batch, return_latent=True)
    drifted = placement_anchor_loss(child, parent, batch, x_t, torch.Generator().manual_seed(0))
    drifted.backward()
    _, x_p = compute_losses(parent, batch, return_latent=True)
    at_parent = placement_anchor_loss(parent, parent, batch, x_p, torch.Generator().manual_seed(0))
    assert float(drifted.detach()) > float(at_parent.detach()) + 0.1
    assert float(child.dec_binary[-1].bias.grad.abs().max()) > 1e-3


def test_keep_unseen_after_keeps_objects_that_fall_out_of_view_without_their_next_encoding(tmp_path):
    from f2p_skill_effect.model import build_model, compute_losses
    from f2p_skill_effect.train import _to_torch, load_transitions
    data = _write_dataset(tmp_path / "d", 5, unseen=[(2, "t1", 1), (5, "t", 0)])
    plain = load_transitions([data], 16, 3, seed=0)
    kept = load_transitions([data], 16, 3, seed=0, keep_unseen_after=True)
    assert len(plain["mask"]) == 6 and plain["seen_t1"].all()          # both flagged rows skipped, as before
    assert len(kept["mask"]) == 7                                        # unseen in O_t: still not usable
    row = 2                                                              # rows 0, 1 then the kept one
    assert kept["seen_t1"][row].tolist() == [True, False, True]
    assert np.array_equal(kept["points_t1"][row, 1], kept["points_t"][row, 1])   # finite stand-in, not zeros
    # the regularisation term does not see the unseen segment's O_t+1; the labels still train
    torch.manual_seed(0)
    model = build_model(TINY)
    batch = _to_torch(kept, np.array([row]), "cpu")
    before = compute_losses(model, batch)
    batch["points_t1"][0, 1] += 5.0
    after = compute_losses(model, batch)
    assert torch.allclose(before["regularization"], after["regularization"])
    assert float(before["prediction"].detach()) > 0
    cli = ["--data", str(data), "--config-json", TINY_JSON, "--epochs", "1", "--points", "16", "--quiet",
           "--val-fraction", "0"]
    assert main(cli + ["--out", str(tmp_path / "k.pt"), "--keep-unseen-after"]) == 0
    assert load_model(tmp_path / "k.pt")[1].training_data["keep_unseen_after"] is True


def test_anchor_weight_keeps_the_parents_placement_predictions_while_fine_tuning(tmp_path):
    from f2p_common.vocabulary import SKILLS
    data = _write_dataset(tmp_path / "d", 1)
    base = ["--epochs", "2", "--lr", "3e-3", "--points", "32", "--batch-size", "4", "--seed", "0", "--quiet"]
    assert main(["--data", str(data), "--config-json", TINY_JSON, "--val-fraction", "0.25",
                 "--out", str(tmp_path / "parent.pt"), *base]) == 0
    d_plus = _write_dataset(tmp_path / "d_plus", 2)
    tune = ["--data", str(d_plus), "--init-checkpoint", str(tmp_path / "parent.pt"), "--val-fraction", "0",
            *base[:-1], "--epochs", "30", "--quiet"]
    assert main(tune + ["--out", str(tmp_path / "plain.pt")]) == 0
    assert main(tune + ["--out", str(tmp_path / "a1.pt"), "--anchor-weight", "5"]) == 0
    assert main(tune + ["--out", str(tmp_path / "a2.pt"), "--anchor-weight", "5"]) == 0
    (parent, _), (plain, _), (a1, c1), (a2, _) = (load_model(tmp_path / f) for f in
                                                   ("parent.pt", "plain.pt", "a1.pt", "a2.pt"))
    assert c1.training_data["anchor_weight"] == 5.0
    assert all(torch.equal(a1.state_dict()[k], a2.state_dict()[k]) for k in a1.state_dict())   # seeded
    # on actions drawn over the whole pick_place box (not D+'s), the anchored child stays nearer its parent
    batch = synthetic_batch(n_transitions=32, seed=7)
    spec = SKILLS["pick_place"]
    params = torch.from_numpy(np.random.default_rng(0).uniform(spec.low, spec.high, (32, 3)).astype(np.float32))
    ref = _target_rows(parent, batch, params)
    gap = lambda m: float(sum((a - b).abs().mean() for a, b in zip(_target_rows(m, batch, params), ref)))
    assert gap(a1) < 0.7 * gap(plain)


def test_anchor_weight_needs_a_parent_and_a_sane_value(tmp_path, capsys):
    import pytest
    data = _write_dataset(tmp_path / "d", 1)
    for extra in (["--anchor-weight", "1"], ["--anchor-weight", "-1", "--init-checkpoint", "x.pt"],
                  ["--anchor-weight", "nan", "--init-checkpoint", "x.pt"]):
        with pytest.raises(SystemExit):
            main(["--data", str(data), "--out", str(tmp_path / "m.pt"), *extra])
    err = capsys.readouterr().err
    assert "--anchor-weight needs --init-checkpoint" in err and "finite number >= 0" in err
    assert not (tmp_path / "m.pt").exists()
