"""``f2p-learn`` end to end on a real failure event with a tiny model: classify, infer,
simulate D+, fine-tune, validate (paper 000 §4-5), and its exit codes."""
import json

import pytest

from f2p_failure.events import save_event
from f2p_learning import learn
from f2p_sim import datagen
from f2p_sim.dataset import SimDataset
from f2p_skill_effect.checkpoint import load_checkpoint
from support.failure_fixtures import (TINY_CONFIG, TINY_VERSION, failure_event, observed_flipped, one_torch_thread,
                                      save_tiny_checkpoint)

_one_thread = pytest.fixture(autouse=True)(one_torch_thread)

#: With 4 particles and 3 SVGD steps some particles of this event give scenes Real2Sim cannot
#: build (an item moved into its container's wall); seed 2 leaves 3 of 4 buildable.
LEARN_SEED = "2"


def tiny_dataset(folder, seed):
    rc = datagen.main(["--out", str(folder), "--transitions", "6", "--shard-size", "6", "--workers", "1",
                       "--seed", str(seed), "--hold-out-failure-modes", "--no-progress"])
    assert rc == 0
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn_inputs")
    event = failure_event()
    return {
        "event": event,
        "event_path": save_event(event, root / "events"),
        "checkpoint": save_tiny_checkpoint(root / "tiny.pt"),
        "replay": tiny_dataset(root / "replay", 1),
        "regression": tiny_dataset(root / "regression", 2),
        "root": root,
    }


def learn_args(event_path, checkpoint, out_dir, *extra):
    return ["--event", str(event_path), "--checkpoint", str(checkpoint), "--out-dir", str(out_dir),
            "--particles", "4", "--svgd-steps", "3", "--epochs", "2", "--seed", LEARN_SEED, "--quiet", *extra]


def test_learn_end_to_end(inputs, tmp_path):
    out = tmp_path / "out"
    ev = inputs["event"]
    rc = learn.main(learn_args(inputs["event_path"], inputs["checkpoint"], out,
                               "--replay-data", str(inputs["replay"]), "--regression-data", str(inputs["regression"])))
    assert rc == 0
    # the child checkpoint, with its lineage
    child = load_checkpoint(out / "model.pt", expected_config=TINY_CONFIG)
    assert child.parent_version == TINY_VERSION
    assert child.version != TINY_VERSION
    lineage = child.training_data["lineage"]
    assert lineage["event_id"] == ev.event_id
    assert lineage["parent_version"] == TINY_VERSION
    assert lineage["method"] == "fail2progress" and lineage["particles"] == 4
    assert "regression_gate" in child.metrics and isinstance(child.metrics["deployable"], bool)
    # the report
    report = json.loads((out / "learn_report.json").read_text())
    assert report["result"] == "learned"
    assert isinstance(report["deployable"], bool)
    gate = report["regression_gate"]
    assert gate["deployable"] == report["deployable"] == child.metrics["deployable"]
    assert set(gate) >= {"tolerance", "parent", "child", "worst_drop", "deployable"}
    assert gate["deployable"] == (gate["worst_drop"] <= gate["tolerance"])
    for side in ("parent", "child"):
        assert 0.0 <= gate[side]["detection_f1"] <= 1.0 and gate[side]["transitions"] > 0
    assert report["event_id"] == ev.event_id and report["parent_version"] == TINY_VERSION
    assert report["child_version"] == child.version
    assert report["stages"]["classify"]["category"] == "incorrect_prediction"
    assert set(report["stages"]) == {"load", "classify", "infer", "simulate", "fine_tune", "validate"}
    sim = report["stages"]["simulate"]
    assert sim["transitions"] + sim["skipped"] == 4 and sim["transitions"] >= 1
    # D+
    manifest = json.loads((out / "d_plus" / "manifest.json").read_text())
    assert manifest["params"]["event_id"] == ev.event_id and manifest["params"]["method"] == "fail2progress"
    assert manifest["transitions"] == sim["transitions"]
    assert lineage["d_plus_shard_sha256"] == manifest["shards"][0]["sha256"]
    assert len(SimDataset(out / "d_plus", verify=True)) == sim["transitions"]
    assert (out / "particles.npz").is_file()


def test_learn_without_regression_data_is_not_deployable(inputs, tmp_path):
    out = tmp_path / "out"
    assert learn.main(learn_args(inputs["event_path"], inputs["checkpoint"], out, "--method", "gradient",
                                 "--anchor-weight", "2", "--keep-unseen-after")) == 0
    td = load_checkpoint(out / "model.pt").training_data
    assert (td["anchor_weight"], td["keep_unseen_after"]) == (2.0, True)   # passed to fine-tuning
    report = json.loads((out / "learn_report.json").read_text())
    assert report["deployable"] is False
    assert report["regression_gate"]["deployable"] is False and "reason" in report["regression_gate"]
    assert report["lineage"]["method"] == "gradient"
    assert load_checkpoint(out / "model.pt").metrics["deployable"] is False


def test_truncated_event_is_bad_input(inputs, tmp_path, capsys):
    data = inputs["event_path"].read_bytes()
    bad = tmp_path / "truncated.f2pevent"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert learn.main(learn_args(bad, inputs["checkpoint"], out)) == learn.EXIT_BAD_INPUT == 2
    assert "error" in capsys.readouterr().err
    assert not (out / "model.pt").exists()
    assert not (out / "d_plus").exists()


def test_truncated_checkpoint_is_bad_input(inputs, tmp_path):
    data = inputs["checkpoint"].read_bytes()
    bad = tmp_path / "tiny.pt"
    bad.write_bytes(data[: len(data) // 2])
    (tmp_path / "tiny.pt.sha256").write_text((inputs["root"] / "tiny.pt.sha256").read_text())
    out = tmp_path / "out"
    assert learn.main(learn_args(inputs["event_path"], bad, out)) == 2
    assert not (out / "model.pt").exists()


def test_missing_event_is_bad_input(inputs, tmp_path):
    out = tmp_path / "out"
    assert learn.main(learn_args(tmp_path / "nope.f2pevent", inputs["checkpoint"], out)) == 2
    assert not (out / "model.pt").exists()


def test_sim_to_real_gap_stops_before_learning(inputs, tmp_path):
    path = save_event(observed_flipped(inputs["event"]), tmp_path / "events")
    out = tmp_path / "out"
    assert learn.main(learn_args(path, inputs["checkpoint"], out)) == learn.EXIT_SIM_TO_REAL == 3
    report = json.loads((out / "learn_report.json").read_text())
    assert "sim_to_real_gap" in report["result"]
    assert report["deployable"] is False
    assert report["stages"]["classify"]["category"] == "sim_to_real_gap"
    assert "infer" not in report["stages"]
    assert not (out / "model.pt").exists()
    assert not (out / "d_plus").exists()


@pytest.mark.parametrize("bad", [["--particles", "1"], ["--anchor-weight", "-0.5"], ["--anchor-weight", "inf"]])
def test_bad_settings_are_usage_errors(inputs, tmp_path, bad):
    with pytest.raises(SystemExit) as e:
        learn.main(["--event", str(inputs["event_path"]), "--checkpoint", str(inputs["checkpoint"]),
                    "--out-dir", str(tmp_path / "out"), *bad])
    assert e.value.code == 2
    assert not (tmp_path / "out").exists()


def test_diverging_inference_is_reported_and_learns_nothing(inputs, tmp_path, capsys):
    # a checkpoint that loads (hashes intact) but whose weights are NaN: e.g. a fine-tune that blew up
    import torch
    from f2p_skill_effect.checkpoint import Checkpoint, save_checkpoint
    from support.failure_fixtures import TINY_POINTS, tiny_model
    sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tiny_model().state_dict().items()}
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, Checkpoint(TINY_CONFIG, sd, TINY_VERSION, training_data={"points_per_object": TINY_POINTS}))
    out = tmp_path / "out"
    assert learn.main(learn_args(inputs["event_path"], bad, out)) == learn.EXIT_DIVERGED == 4
    assert "inference diverged" in capsys.readouterr().err
    report = json.loads((out / "learn_report.json").read_text())
    assert report["deployable"] is False and report["result"].startswith("inference diverged")
    assert "infer" not in report["stages"]
    assert not (out / "model.pt").exists() and not (out / "d_plus").exists()


def test_infer_stage_reports_particles_outside_the_feasible_set(inputs, tmp_path):
    out = tmp_path / "out"
    assert learn.main(learn_args(inputs["event_path"], inputs["checkpoint"], out, "--skip-classification")) == 0
    st = json.loads((out / "learn_report.json").read_text())["stages"]["infer"]
    assert isinstance(st["states_at_bound"], int) and 0 <= st["states_at_bound"] <= 4
    assert isinstance(st["actions_infeasible"], int) and 0 <= st["actions_infeasible"] <= 4
