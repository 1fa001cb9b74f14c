"""The one checkpoint format: exact round trip; tampered, truncated, mismatched files refused."""
import dataclasses
import json

import pytest
import torch

from f2p_common.weights import CheckpointError, sidecar_path
from f2p_skill_effect.checkpoint import (Checkpoint, load_checkpoint, load_model, save_checkpoint, shipped_model,
                                         vocabulary_json)
from f2p_skill_effect.model import Observation, PointsToPlansModel, SkillBatch

from support.synthetic import TINY


def _save(tmp_path, name="m.pt", cfg=TINY, vocab=None):
    torch.manual_seed(0)
    m = PointsToPlansModel(cfg)
    ck = Checkpoint(cfg, m.state_dict(), version="v2", parent_version="v1",
                    training_data={"folders": ["d"], "transitions": 6}, metrics={"val_loss": 0.5})
    if vocab is not None:
        ck.vocabulary = vocab
    path = tmp_path / name
    save_checkpoint(path, ck)
    return m, path


def test_round_trip_exact(tmp_path):
    m, path = _save(tmp_path)
    m2, ck = load_model(path, expected_config=TINY)
    assert ck.version == "v2" and ck.parent_version == "v1" and ck.metrics == {"val_loss": 0.5}
    assert ck.training_data["transitions"] == 6 and ck.config == TINY
    sd, sd2 = m.state_dict(), m2.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    obs = Observation(torch.rand(1, 3, 32, 3), torch.ones(1, 3, dtype=torch.bool))
    sk = [SkillBatch(torch.tensor([0]), torch.tensor([0]), torch.tensor([[0.1, 0.0, 0.1]]))]
    m.eval()
    with torch.no_grad():
        assert torch.equal(m.rollout(obs, sk)[0].binary, m2.rollout(obs, sk)[0].binary)
    # weights only: the file holds tensors and strings, nothing executable
    obj = torch.load(path, weights_only=True)
    assert set(obj) == {"format", "metadata", "state_dict"}
    assert json.loads(obj["metadata"])["vocabulary"] == vocabulary_json()


def test_tampered_bytes_refused(tmp_path):
    _, path = _save(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_tampered_weights_with_fresh_sidecar_refused(tmp_path):
    # An attacker rewrites a tensor and the sidecar: the content digest still catches it.
    _, path = _save(tmp_path)
    obj = torch.load(path, weights_only=True)
    k = next(iter(obj["state_dict"]))
    obj["state_dict"][k] = obj["state_dict"][k] + 1
    torch.save(obj, path)
    import hashlib
    sidecar_path(path).write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "  m.pt\n")
    with pytest.raises(CheckpointError, match="digest"):
        load_checkpoint(path)


def test_truncated_refused(tmp_path):
    _, path = _save(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    sidecar_path(path).unlink()        # without the sidecar, the archive check still refuses it
    with pytest.raises(CheckpointError, match="readable"):
        load_checkpoint(path, require_sidecar=False)


def test_missing_file_and_sidecar(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope.pt")
    _, path = _save(tmp_path)
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)
    assert load_checkpoint(path, require_sidecar=False).config == TINY


def test_mismatched_vocabulary_refused(tmp_path):
    v = vocabulary_json()
    v["binary_relations"] = list(reversed(v["binary_relations"]))
    _, path = _save(tmp_path, vocab=v)
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_checkpoint(path)


def test_mismatched_architecture_refused(tmp_path):
    _, path = _save(tmp_path)
    with pytest.raises(CheckpointError, match="architecture"):
        load_checkpoint(path, expected_config=dataclasses.replace(TINY, n_layers=3))


@pytest.mark.parametrize("name,version,target_relations", [
    ("skill_effect_pretrained.pt", "ae063623659bb4aa", False),
    ("skill_effect_target_relations.pt", "6918c570aa846512", True)])
def test_shipped_checkpoints_verify(name, version, target_relations):
    """The models' README documents both shipped models by version; each is installed with
    f2p_skill_effect (found through the ament index) and loads with its sidecar."""
    path = shipped_model(name)
    assert path.parts[-3:] == ("f2p_skill_effect", "models", name)
    model, ck = load_model(path)
    assert (ck.version, ck.config.target_relations) == (version, target_relations)
    assert ck.training_data["seed"] == 0 and ck.parent_version is None


def test_the_shipped_learned_child_descends_from_the_shipped_parent():
    """The demo's transport-3 child, shipped for swap demonstrations, names its parent and event."""
    _, ck = load_model(shipped_model("skill_effect_transport3_learned.pt"))
    assert (ck.version, ck.parent_version) == ("9cd94cb61795b96e", "ae063623659bb4aa")
    assert ck.metrics["deployable"] is True and ck.training_data["lineage"]["method"] == "fail2progress"


def test_the_shipped_real_scale_model_extends_the_shipped_parent():
    """skill_effect_real_scale.pt: the pre-trained model fine-tuned on real-scale scenes (the
    models' README gives the recipe and its measured detection F1)."""
    _, ck = load_model(shipped_model("skill_effect_real_scale.pt"))
    assert ck.parent_version == "ae063623659bb4aa"
    assert "real-scale" in ck.training_data["lineage"]["recipe"] and ck.training_data["replay_fraction"] > 0


def test_a_checkpoint_parameter_names_the_pretrained_model_a_shipped_model_or_a_path(tmp_path):
    from f2p_skill_effect.checkpoint import checkpoint_path
    assert checkpoint_path("") == shipped_model("skill_effect_pretrained.pt")
    assert checkpoint_path("skill_effect_real_scale.pt") == shipped_model("skill_effect_real_scale.pt")
    assert checkpoint_path(str(tmp_path / "mine.pt")) == tmp_path / "mine.pt"
