"""Training Γ on a tiny synthetic dataset (``train(TrainConfig)``): runs, is deterministic with
its seed, writes a loadable checkpoint; fine-tuning records its parent; the command line is a
thin wrapper that builds the same config."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from f2p_skill_effect.checkpoint import load_checkpoint, load_model
from f2p_training.train import FineTuneRecipe, TrainConfig, TrainResult, config_from_args, main, train

from support.synthetic import TINY, synthetic_batch
from support.synthetic import write_dataset as _write_dataset


TINY_JSON = json.dumps({k: v for k, v in TINY.to_json().items() if k not in ("unary", "binary", "skills")})


def _pretrain(data, out, **changes) -> TrainResult:
    cfg = TrainConfig(data=[data], out=out, model=TINY, epochs=3, lr=3e-3, points=32, batch_size=4,
                      val_fraction=0.25, seed=0)
    return train(dataclasses.replace(cfg, **changes))


def test_pretrain_then_finetune(tmp_path):
    data = _write_dataset(tmp_path / "d", 1)
    lines = []
    ra = _pretrain(data, tmp_path / "a.pt", version="v1", log=lines.append)
    rb = _pretrain(data, tmp_path / "b.pt", version="v1")
    assert any("epoch 3/3" in line for line in lines) and "wrote" in lines[-1]
    assert (ra.version, ra.epochs_run, ra.train_transitions, ra.val_transitions) == ("v1", 3, 6, 2)
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert ra.sha256 == rb.sha256                                                        # seeded: repeatable
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.config == TINY and a.training_data["transitions"] == 8 and len(a.metrics["history"]) == 3
    new = _write_dataset(tmp_path / "d_plus", 2)
    rc = train(TrainConfig(data=[new], out=tmp_path / "c.pt", init_checkpoint=tmp_path / "a.pt", epochs=2, points=32,
                           replay_data=[data], replay_fraction=0.5, version="v2"))
    model, c = load_model(tmp_path / "c.pt", expected_config=TINY)
    assert c.parent_version == "v1" and c.version == "v2" and c.training_data["replay_fraction"] == 0.5
    assert rc.parent_version == "v1" and rc.replay_per_epoch > 0


def test_default_version_is_the_weights_digest(tmp_path):
    data = _write_dataset(tmp_path / "d", 1)
    r = _pretrain(data, tmp_path / "a.pt", epochs=1)
    assert len(r.version) == 16 and load_checkpoint(tmp_path / "a.pt").version == r.version


def test_fine_tune_recipe_is_the_learners_one_definition(tmp_path):
    r = FineTuneRecipe()
    assert (r.epochs, r.lr, r.batch_size, r.replay_fraction, r.relabel_objects) == (200, 1e-4, 4, 0.5, True)
    cfg = r.train_config(["dplus"], "m.pt", "p.pt", points=64, seed=3, replay_data=["rep"], keep_unstable=True)
    assert (cfg.val_fraction, cfg.batch_size, cfg.replay_fraction, cfg.keep_unstable, cfg.points) == (0.0, 4, 0.5, True, 64)
    alone = r.train_config(["dplus"], "m.pt", "p.pt", points=64, seed=3, keep_unstable=False)
    assert alone.replay_fraction == 0.0 and not alone.replay_data          # no replay data: no replay share
    alone.validate()


@pytest.mark.parametrize("changes, pattern", [
    (dict(epochs=0), "must be >= 1"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(replay_fraction=0.5), "needs replay_data"),
    (dict(replay_fraction=1.0, replay_data=["r"]), r"replay_fraction must be in \[0, 1\)"),
    (dict(anchor_weight=1.0), "needs init_checkpoint"),
    (dict(anchor_weight=-1.0, init_checkpoint="p.pt"), "finite number >= 0"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(data=[]), "no training data"),
])
def test_bad_settings_are_refused_before_anything_runs(tmp_path, changes, pattern):
    cfg = dataclasses.replace(TrainConfig(data=["d"], out=tmp_path / "m.pt"), **changes)
    with pytest.raises(ValueError, match=pattern):
        train(cfg)
    assert not (tmp_path / "m.pt").exists()


def test_command_line_builds_the_same_config_and_reports_bad_input(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d", 1)
    cfg = config_from_args(["--data", str(data), "--out", str(tmp_path / "m.pt"), "--config-json", TINY_JSON,
                            "--epochs", "2", "--points", "32", "--relabel-objects", "--lineage-json", '{"e": 1}'])
    d = TrainConfig(data=[], out="")
    assert (cfg.model, cfg.epochs, cfg.points, cfg.relabel_objects, cfg.lineage) == (TINY, 2, 32, True, {"e": 1})
    assert (cfg.lr, cfg.batch_size, cfg.val_fraction, cfg.patience) == (d.lr, d.batch_size, d.val_fraction, d.patience)
    assert main(["--data", str(data), "--out", str(tmp_path / "m.pt"), "--config-json", TINY_JSON, "--epochs", "1",
                 "--points", "32", "--val-fraction", "0"]) == 0
    assert "[f2p-train] wrote" in capsys.readouterr().out
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--data", str(data), "--out", str(tmp_path / "n.pt"), "--init-checkpoint", str(bad)]) == 2
    assert "f2p-train: error" in capsys.readouterr().err and not (tmp_path / "n.pt").exists()


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
    from f2p_training.transitions import relabel_objects
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
    _pretrain(data, tmp_path / "plain.pt", epochs=2)
    _pretrain(data, tmp_path / "r1.pt", epochs=2, relabel_objects=True)
    _pretrain(data, tmp_path / "r2.pt", epochs=2, relabel_objects=True)
    plain, r1, r2 = (load_checkpoint(tmp_path / f) for f in ("plain.pt", "r1.pt", "r2.pt"))
    assert plain.training_data["relabel_objects"] is False and r1.training_data["relabel_objects"] is True
    assert all(torch.equal(r1.state_dict[k], r2.state_dict[k]) for k in r1.state_dict)       # seeded
    assert any(not torch.equal(plain.state_dict[k], r1.state_dict[k]) for k in r1.state_dict)


def test_log_every_prints_every_nth_epoch_and_the_last(tmp_path):
    data = _write_dataset(tmp_path / "d", 1)
    lines = []
    _pretrain(data, tmp_path / "m.pt", epochs=5, val_fraction=0.0, log_every=2, log=lines.append)
    epochs = [line.split()[2] for line in lines if line.startswith("[f2p-train] epoch")]
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
    from f2p_training.train import placement_anchor_loss
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
    from f2p_training.transitions import load_transitions, to_batch
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
    batch = to_batch(kept, np.array([row]), "cpu")
    before = compute_losses(model, batch)
    batch["points_t1"][0, 1] += 5.0
    after = compute_losses(model, batch)
    assert torch.allclose(before["regularization"], after["regularization"])
    assert float(before["prediction"].detach()) > 0
    train(TrainConfig(data=[data], out=tmp_path / "k.pt", model=TINY, epochs=1, points=16, val_fraction=0.0,
                      keep_unseen_after=True))
    assert load_model(tmp_path / "k.pt")[1].training_data["keep_unseen_after"] is True


def test_anchor_weight_keeps_the_parents_placement_predictions_while_fine_tuning(tmp_path):
    from f2p_common.vocabulary import SKILLS
    data = _write_dataset(tmp_path / "d", 1)
    _pretrain(data, tmp_path / "parent.pt", epochs=2)
    d_plus = _write_dataset(tmp_path / "d_plus", 2)
    tune = TrainConfig(data=[d_plus], out="", init_checkpoint=tmp_path / "parent.pt", val_fraction=0.0, epochs=30,
                       lr=3e-3, points=32, batch_size=4, seed=0)
    train(dataclasses.replace(tune, out=tmp_path / "plain.pt"))
    train(dataclasses.replace(tune, out=tmp_path / "a1.pt", anchor_weight=5.0))
    train(dataclasses.replace(tune, out=tmp_path / "a2.pt", anchor_weight=5.0))
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


def test_anchor_weight_needs_a_parent_and_a_sane_value_on_the_command_line(tmp_path, capsys):
    data = _write_dataset(tmp_path / "d", 1)
    for extra in (["--anchor-weight", "1"], ["--anchor-weight", "-1", "--init-checkpoint", "x.pt"],
                  ["--anchor-weight", "nan", "--init-checkpoint", "x.pt"]):
        with pytest.raises(SystemExit):
            main(["--data", str(data), "--out", str(tmp_path / "m.pt"), *extra])
    err = capsys.readouterr().err
    assert "anchor_weight needs init_checkpoint" in err and "finite number >= 0" in err
    assert not (tmp_path / "m.pt").exists()
