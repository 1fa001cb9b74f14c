"""Learning from one failure (``learn(LearnConfig)``) end to end on a real failure event with a
tiny model: classify, infer, simulate D+, fine-tune, validate (paper 000 §4-5); every outcome
recorded in its report; bad input refused before anything is written; ``f2p-learn``'s exit codes."""
import dataclasses
import json

import pytest

from f2p_common.dataset import SimDataset
from f2p_failure.events import save_event
from f2p_learning import learn as learn_cli
from f2p_learning.learn import LearnConfig, LearnInputError, learn
from f2p_datasets.datagen import DatagenConfig, DatagenParams, generate
from f2p_skill_effect.checkpoint import load_checkpoint
from f2p_training.train import FineTuneRecipe
from support.failure_fixtures import TINY_CONFIG, TINY_VERSION, failure_event, observed_flipped, save_tiny_checkpoint

#: With 4 particles and 3 SVGD steps some particles of this event give scenes Real2Sim cannot
#: build (an item moved into its container's wall); seed 2 leaves 3 of 4 buildable.
LEARN_SEED = 2


def tiny_dataset(folder, seed):
    generate(DatagenConfig(folder, DatagenParams(transitions=6, shard_size=6, seed=seed, hold_out_failure_modes=True),
                           workers=1, progress=False))
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


def config(event_path, checkpoint, out_dir, **changes) -> LearnConfig:
    cfg = LearnConfig(event=event_path, checkpoint=checkpoint, out_dir=out_dir, particles=4, svgd_steps=3,
                      fine_tune=FineTuneRecipe(epochs=2), seed=LEARN_SEED)
    return dataclasses.replace(cfg, **changes)


def test_learn_end_to_end(inputs, tmp_path):
    out = tmp_path / "out"
    ev = inputs["event"]
    lines = []
    rep = learn(config(inputs["event_path"], inputs["checkpoint"], out, replay_data=[inputs["replay"]],
                       regression_data=[inputs["regression"]], log=lines.append))
    assert rep.outcome == "learned" and rep.checkpoint == str(out / "model.pt")
    assert any(line.startswith("[f2p-learn] infer") for line in lines)
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
    assert set(gate) >= {"tolerance", "reference", "child", "worst_drop", "floors", "below_floor", "deployable"}
    assert gate["deployable"] == (gate["worst_drop"] <= gate["tolerance"] and not gate["below_floor"])
    for side in ("reference", "child"):
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


def test_d_plus_seen_through_the_robots_perception_trains_the_child_on_its_kind_of_segments(inputs, tmp_path):
    out = tmp_path / "out"
    rep = learn(config(inputs["event_path"], inputs["checkpoint"], out, perception="geometric"))
    assert rep.outcome == "learned"
    manifest = json.loads((out / "d_plus" / "manifest.json").read_text())
    assert manifest["params"]["perception"] == "geometric"
    sim = rep.stages["simulate"]
    assert 1 <= sim["usable"] <= sim["transitions"]
    rows = list(SimDataset(out / "d_plus").transitions(0))
    assert len(rows) == sim["transitions"]
    assert sum(int(r["obs_t_counts"][r["target"]] > 0) for r in rows) >= sim["usable"]   # usable: the target seen


def test_learn_without_regression_data_is_not_deployable(inputs, tmp_path):
    out = tmp_path / "out"
    rep = learn(config(inputs["event_path"], inputs["checkpoint"], out, method="gradient",
                       fine_tune=FineTuneRecipe(epochs=2, anchor_weight=2.0, keep_unseen_after=True)))
    assert rep.outcome == "learned" and rep.deployable is False
    td = load_checkpoint(out / "model.pt").training_data
    assert (td["anchor_weight"], td["keep_unseen_after"]) == (2.0, True)   # passed to fine-tuning
    report = json.loads((out / "learn_report.json").read_text())
    assert report["deployable"] is False
    assert report["regression_gate"]["deployable"] is False and "reason" in report["regression_gate"]
    assert report["lineage"]["method"] == "gradient"
    assert load_checkpoint(out / "model.pt").metrics["deployable"] is False


def test_truncated_event_is_bad_input(inputs, tmp_path):
    data = inputs["event_path"].read_bytes()
    bad = tmp_path / "truncated.f2pevent"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(LearnInputError, match="corrupt or truncated"):
        learn(config(bad, inputs["checkpoint"], out))
    assert not (out / "model.pt").exists() and not (out / "d_plus").exists()
    report = json.loads((out / "learn_report.json").read_text())        # every exit writes its report
    assert report["outcome"] == "bad_input" and "corrupt or truncated" in report["result"]


def test_truncated_checkpoint_is_bad_input(inputs, tmp_path):
    data = inputs["checkpoint"].read_bytes()
    bad = tmp_path / "tiny.pt"
    bad.write_bytes(data[: len(data) // 2])
    (tmp_path / "tiny.pt.sha256").write_text((inputs["root"] / "tiny.pt.sha256").read_text())
    out = tmp_path / "out"
    with pytest.raises(LearnInputError, match="SHA-256"):
        learn(config(inputs["event_path"], bad, out))
    assert not (out / "model.pt").exists()


def test_missing_event_is_bad_input(inputs, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(LearnInputError, match="does not exist"):
        learn(config(tmp_path / "nope.f2pevent", inputs["checkpoint"], out))
    assert not (out / "model.pt").exists()


def test_an_unknown_world_layout_is_bad_input(inputs, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(LearnInputError, match="unknown layout 'kitchen'; known: paper, real_scale"):
        learn(config(inputs["event_path"], inputs["checkpoint"], out, layout="kitchen"))
    assert json.loads((out / "learn_report.json").read_text())["outcome"] == "bad_input"


def test_sim_to_real_gap_stops_before_learning(inputs, tmp_path):
    path = save_event(observed_flipped(inputs["event"]), tmp_path / "events")
    out = tmp_path / "out"
    rep = learn(config(path, inputs["checkpoint"], out))
    assert rep.outcome == "sim_to_real_gap"
    report = json.loads((out / "learn_report.json").read_text())
    assert "sim_to_real_gap" in report["result"]
    assert report["deployable"] is False
    assert report["stages"]["classify"]["category"] == "sim_to_real_gap"
    assert "infer" not in report["stages"]
    assert not (out / "model.pt").exists()
    assert not (out / "d_plus").exists()


@pytest.mark.parametrize("changes, pattern", [
    (dict(particles=1), "particles must be >= 2"),
    (dict(method="guess"), "unknown method"),
    (dict(fine_tune=FineTuneRecipe(anchor_weight=-0.5)), "finite number >= 0"),
    (dict(fine_tune=FineTuneRecipe(anchor_weight=float("inf"))), "finite number >= 0"),
    (dict(fine_tune=FineTuneRecipe(epochs=0)), "must be >= 1"),
    (dict(perception="labelled_cloud"), "depth cloud"),
    (dict(perception="geometric", sensor_noise=(-1.0, 0.0, 0.0)), "noise|std|>= 0"),
])
def test_bad_settings_are_refused_before_anything_runs(inputs, tmp_path, changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        learn(config(inputs["event_path"], inputs["checkpoint"], tmp_path / "out", **changes))
    assert not (tmp_path / "out").exists()


def test_command_line_exit_codes(inputs, tmp_path, capsys):
    argv = lambda event, out, *extra: ["--event", str(event), "--checkpoint", str(inputs["checkpoint"]),  # noqa: E731
                                      "--out-dir", str(out), "--particles", "4", "--svgd-steps", "3", "--epochs", "1",
                                      "--seed", str(LEARN_SEED), "--quiet", *extra]
    with pytest.raises(SystemExit) as e:
        learn_cli.main(argv(inputs["event_path"], tmp_path / "a", "--particles", "1"))
    assert e.value.code == 2 and "particles must be >= 2" in capsys.readouterr().err
    assert learn_cli.main(argv(tmp_path / "nope.f2pevent", tmp_path / "b")) == learn_cli.EXIT_CODES["bad_input"] == 2
    gap = save_event(observed_flipped(inputs["event"]), tmp_path / "events")
    assert learn_cli.main(argv(gap, tmp_path / "c")) == learn_cli.EXIT_CODES["sim_to_real_gap"] == 3
    assert learn_cli.main(argv(inputs["event_path"], tmp_path / "d", "--skip-classification")) == 0
    assert load_checkpoint(tmp_path / "d" / "model.pt").training_data["lineage"]["particles"] == 4


def test_diverging_inference_is_reported_and_learns_nothing(inputs, tmp_path):
    # a checkpoint that loads (hashes intact) but whose weights are NaN: e.g. a fine-tune that blew up
    import torch
    from f2p_skill_effect.checkpoint import Checkpoint, save_checkpoint
    from support.failure_fixtures import TINY_POINTS, tiny_model
    sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tiny_model().state_dict().items()}
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, Checkpoint(TINY_CONFIG, sd, TINY_VERSION, training_data={"points_per_object": TINY_POINTS}))
    out = tmp_path / "out"
    rep = learn(config(inputs["event_path"], bad, out))
    assert rep.outcome == "inference_diverged" and learn_cli.EXIT_CODES[rep.outcome] == 4
    report = json.loads((out / "learn_report.json").read_text())
    assert report["deployable"] is False and report["result"].startswith("inference diverged")
    assert "infer" not in report["stages"]
    assert not (out / "model.pt").exists() and not (out / "d_plus").exists()


def test_infer_stage_reports_particles_outside_the_feasible_set(inputs, tmp_path):
    out = tmp_path / "out"
    rep = learn(config(inputs["event_path"], inputs["checkpoint"], out, skip_classification=True))
    st = rep.stages["infer"]
    assert rep.stages["classify"]["category"] == "skipped"
    assert isinstance(st["states_at_bound"], int) and 0 <= st["states_at_bound"] <= 4
    assert isinstance(st["actions_infeasible"], int) and 0 <= st["actions_infeasible"] <= 4


def test_a_run_stopped_between_fine_tuning_and_the_gate_leaves_no_child(inputs, tmp_path, monkeypatch):
    # the fine-tuned child is provisional until the gate's verdict is written into it
    def killed(*_a, **_k):
        assert (tmp_path / "out" / "model.provisional.pt").is_file()
        raise learn_cli.LearnInterrupted("signal 15")
    monkeypatch.setattr(learn_cli, "regression_gate", killed)
    out = tmp_path / "out"
    rep = learn(config(inputs["event_path"], inputs["checkpoint"], out, regression_data=[inputs["regression"]]))
    assert rep.outcome == "interrupted" and learn_cli.EXIT_CODES["interrupted"] == 5
    assert not (out / "model.pt").exists() and not (out / "model.provisional.pt").exists()
    assert json.loads((out / "learn_report.json").read_text())["outcome"] == "interrupted"
    monkeypatch.undo()
    again = learn(config(inputs["event_path"], inputs["checkpoint"], out, regression_data=[inputs["regression"]]))
    assert again.outcome == "learned"                       # an interrupted out-dir is run again
    assert not (out / "model.provisional.pt").exists() and isinstance(load_checkpoint(out / "model.pt").metrics["deployable"], bool)


def test_an_out_dir_holding_an_earlier_run_is_refused_unless_fresh(inputs, tmp_path):
    out = tmp_path / "out"
    first = learn(config(inputs["event_path"], inputs["checkpoint"], out, skip_classification=True))
    assert first.outcome == "learned"
    with pytest.raises(LearnInputError, match="holds an earlier run \\(outcome: learned\\)"):
        learn(config(tmp_path / "nope.f2pevent", inputs["checkpoint"], out))
    assert json.loads((out / "learn_report.json").read_text())["outcome"] == "learned"     # untouched
    with pytest.raises(LearnInputError, match="does not exist"):
        learn(config(tmp_path / "nope.f2pevent", inputs["checkpoint"], out, fresh=True))
    assert not (out / "model.pt").exists() and not (out / "d_plus").exists()                 # discarded
    assert json.loads((out / "learn_report.json").read_text())["outcome"] == "bad_input"


def test_unwritable_out_dir_and_mismatched_checkpoint_are_clear_bad_input(inputs, tmp_path):
    import torch
    from f2p_skill_effect.checkpoint import Checkpoint, save_checkpoint
    from support.failure_fixtures import TINY_POINTS, tiny_model
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(LearnInputError, match="cannot write to the out-dir"):
        learn(config(inputs["event_path"], inputs["checkpoint"], blocker / "out"))
    sd = tiny_model().state_dict()
    sd = {k: (torch.zeros(v.shape[0] + 1, *v.shape[1:]) if i == 0 else v) for i, (k, v) in enumerate(sd.items())}
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, Checkpoint(TINY_CONFIG, sd, TINY_VERSION, training_data={"points_per_object": TINY_POINTS}))
    out = tmp_path / "out"
    with pytest.raises(LearnInputError, match="weights do not fit the architecture"):
        learn(config(inputs["event_path"], wrong, out))
    assert json.loads((out / "learn_report.json").read_text())["outcome"] == "bad_input"


def test_sigterm_ends_f2p_learn_with_a_report(inputs, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "f2p_learning.learn", "--event", str(inputs["event_path"]),
                             "--checkpoint", str(inputs["checkpoint"]), "--out-dir", str(out), "--particles", "4",
                             "--svgd-steps", "3", "--epochs", "50", "--seed", str(LEARN_SEED)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in proc.stdout:                       # stop it once it is fine-tuning
        if line.startswith("[f2p-learn] simulate"):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(120) == 5, rest
    assert json.loads((out / "learn_report.json").read_text())["outcome"] == "interrupted"
    assert not (out / "model.pt").exists() and not (out / "model.provisional.pt").exists()


def test_f2p_gate_writes_the_verdict_the_planner_admits_a_child_by(inputs, tmp_path):
    """A model trained outside the learner is gated like the learner's children: the verdict and
    the scores go into its metrics; floors refuse a weak child; bad input is named."""
    from f2p_learning.gate import GateConfig, GateInputError, gate_checkpoint
    from f2p_skill_effect.checkpoint import save_checkpoint
    parent = load_checkpoint(inputs["checkpoint"])
    child = tmp_path / "child.pt"
    save_checkpoint(child, dataclasses.replace(parent, version="offline_child", parent_version=TINY_VERSION))
    res = gate_checkpoint(GateConfig(child, [inputs["regression"]], inputs["checkpoint"], min_detection_f1=0.0,
                                     min_next_step_accuracy=0.0))
    assert res.deployable and res.gate["worst_drop"] == 0 and res.gate["reference_version"] == TINY_VERSION
    gated = load_checkpoint(child)
    assert gated.metrics["deployable"] is True and gated.version == "offline_child"
    refused = gate_checkpoint(GateConfig(child, [inputs["regression"]], inputs["checkpoint"], out=tmp_path / "r.pt"))
    assert not refused.deployable and "below its floor" in refused.gate["reason"]       # a random tiny model
    assert load_checkpoint(tmp_path / "r.pt").metrics["deployable"] is False
    with pytest.raises(GateInputError, match="no parent_version"):
        gate_checkpoint(GateConfig(inputs["checkpoint"], [inputs["regression"]]))
    with pytest.raises(GateInputError, match="no regression data"):
        gate_checkpoint(GateConfig(child))
    with pytest.raises(GateInputError, match="not a shipped model"):
        gate_checkpoint(GateConfig(child, [inputs["regression"]]))


def test_the_learners_parameters_carry_how_d_plus_is_perceived(tmp_path):
    """learner.yaml's ``perception`` reaches every job's LearnConfig; its default keeps the
    simulator's segments, and a value that is not a depth backend is refused with the choices."""
    from f2p_common import parameters as P
    from f2p_learning.jobs import PARAMS, learner_config
    values = {p.name: p.default for p in PARAMS}
    values.update(queue_dir=str(tmp_path / "q"), store_dir=str(tmp_path / "s"))
    assert learner_config(values).learn.perception == "simulator"
    assert learner_config(dict(values, perception="geometric")).learn.perception == "geometric"
    with pytest.raises(P.ParameterError, match="perception='yolo_seg'.*geometric"):
        P.validate(PARAMS, {"perception": "yolo_seg"}, "learner")
