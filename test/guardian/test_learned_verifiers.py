"""Guardian's learned verifiers at a small size: the vision-language model of Guardian's family
(an InternVL built from a config, a tokenizer trained in-process), its three CoT strategies,
LoRA fine-tuning of a "pre-trained" model from a local path, the cheap baseline, training and
evaluation on a FailCoT made here, and bad input."""
import json

import numpy as np
import pytest

from f2p_guardian.baseline import BaselineVerifier
from f2p_guardian.examples import load_examples, to_query
from f2p_guardian.taxonomy import CATEGORIES, SUCCESS
from f2p_guardian.verifier import QueryError
from f2p_guardian.vlm import IMAGE_TOKEN, TAGS, GuardianVLM, VLMConfig, build_model, train_tokenizer

TINY = VLMConfig(image_size=32, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2, text_hidden=32,
                 text_layers=2, text_heads=2, text_kv_heads=1, text_intermediate=64, vocab_size=400, max_length=2048)


@pytest.fixture(scope="module")
def failcot(tmp_path_factory):
    from f2p_datasets.failcot import FailCoTConfig, generate

    out = tmp_path_factory.mktemp("failcot")
    generate(FailCoTConfig(str(out), scenes_per_variant=1, tasks=("transport", "organize"), object_counts=(3, 5),
                           image_width=48, image_height=36))
    return str(out)


@pytest.fixture(scope="module")
def tiny_vlm(failcot):
    import torch

    torch.manual_seed(0)
    texts = [ex["instruction"] + " " + ex["answer"] for ex in load_examples(failcot)]
    tok = train_tokenizer(texts, TINY.vocab_size)
    return GuardianVLM(build_model(TINY, tok).eval(), tok, views=3, image_shape=(36, 48), strategy="vanilla",
                       max_reasoning_tokens=12)


def test_the_tokenizer_keeps_the_prompt_tags_whole(tiny_vlm):
    tok = tiny_vlm.tokenizer
    for t in (IMAGE_TOKEN, *TAGS):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    assert tiny_vlm.image_seq_length == TINY.image_seq_length == 4


@pytest.mark.parametrize("strategy", ["vanilla", "thinking", "dropout"])
def test_every_strategy_answers_with_a_verdict(tiny_vlm, failcot, strategy):
    tiny_vlm.strategy = strategy
    try:
        for ex in load_examples(failcot, "train")[:4]:
            q = to_query(ex, failcot)
            v = tiny_vlm.verify_plan(q) if ex["mode"] == "plan" else tiny_vlm.verify_execution(q)
            assert v.category == SUCCESS or v.category in CATEGORIES[ex["mode"]]
            assert 0.0 <= v.confidence <= 1.0 and v.verifier == "vlm" and v.latency_s < 5
            assert (v.reasoning != "") == (strategy == "thinking") or strategy == "thinking"
    finally:
        tiny_vlm.strategy = "vanilla"


def test_bad_queries_and_bad_folders_say_why(tiny_vlm, failcot, tmp_path):
    ex = load_examples(failcot, mode="execution")[0]
    q = to_query(ex, failcot)
    q.images_after = q.images_after[:2]
    with pytest.raises(QueryError, match="2 camera view"):
        tiny_vlm.verify_execution(q)
    q = to_query(ex, failcot)
    q.images_before = [np.zeros((480, 640, 3), np.uint8)] * 3
    with pytest.raises(QueryError, match="640x480"):
        tiny_vlm.verify_execution(q)
    p = to_query(load_examples(failcot, mode="plan")[0], failcot)
    p.plan = []
    with pytest.raises(QueryError, match="empty"):
        tiny_vlm.verify_plan(p)
    with pytest.raises(ValueError, match="no Guardian model"):
        GuardianVLM.from_pretrained(tmp_path / "absent")
    tiny_vlm.save(tmp_path / "broken")
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        GuardianVLM.from_pretrained(tmp_path / "broken")


def test_a_saved_model_reloads_and_answers_the_same(tiny_vlm, failcot, tmp_path):
    ex = load_examples(failcot, mode="plan")[0]
    before = tiny_vlm.verify_plan(to_query(ex, failcot))
    again = GuardianVLM.from_pretrained(tiny_vlm.save(tmp_path / "m"))
    after = again.verify_plan(to_query(ex, failcot))
    assert (after.category, after.confidence) == pytest.approx((before.category, before.confidence))
    assert again.image_shape == (36, 48) and again.views == 3


def test_training_keeps_the_best_checkpoint_and_lora_adapters_reload_exactly(failcot, tiny_vlm, tmp_path):
    from f2p_training.guardian import VLMTrainConfig, evaluate, train_vlm

    lines = []
    r = train_vlm(VLMTrainConfig(failcot, str(tmp_path / "small"), "dropout", epochs=2, batch_size=4, model=TINY,
                                 val_limit=6), lines.append)
    assert len(r.val_accuracy) == 2 and r.best_epoch in (0, 1) and lines[-1].startswith("epoch 2/2")
    trained = GuardianVLM.from_pretrained(r.path)
    assert trained.strategy == "dropout" and json.loads((r.path / "training.json").read_text())["train_examples"] > 0
    report = evaluate(trained, load_examples(failcot, "test"), failcot)
    assert report["count"] == sum(m["count"] for m in report["modes"].values()) > 0
    # A "pre-trained" InternVL in a local folder, fine-tuned with LoRA: only adapters train and are saved.
    base = tiny_vlm.save(tmp_path / "pretrained")
    lora = train_vlm(VLMTrainConfig(failcot, str(tmp_path / "lora"), "vanilla", epochs=1, batch_size=4, lr=1e-2,
                                    pretrained=str(base), lora_rank=4, val_limit=4))
    assert 0 < lora.trainable_parameters < lora.parameters / 4
    assert (lora.path / "adapter_model.safetensors").exists() and not (lora.path / "model.safetensors").exists()
    tuned = GuardianVLM.from_pretrained(lora.path)
    names = [n for n, _ in tuned.model.named_parameters() if "lora_" in n]
    assert names and not any("vision_tower" in n for n in names)
    ex = load_examples(failcot, mode="execution")[0]
    q = to_query(ex, failcot)
    a = GuardianVLM.from_pretrained(lora.path).verify_execution(q)
    b = tuned.verify_execution(q)
    assert a.confidence == b.confidence and a.category == b.category
    plain = GuardianVLM.from_pretrained(base).verify_execution(q)          # the adapters changed the answer
    assert plain.verifier == "vlm" and plain.confidence != b.confidence


def test_the_baseline_trains_saves_and_reloads(failcot, tmp_path):
    from f2p_training.guardian import BaselineTrainConfig, evaluate, train_baseline

    r = train_baseline(BaselineTrainConfig(failcot, str(tmp_path / "b"), epochs=3))
    loaded = BaselineVerifier.load(r.path)
    examples = load_examples(failcot, "test")
    assert evaluate(loaded, examples, failcot)["count"] == len(examples)
    ex = load_examples(failcot, mode="plan")[0]
    v = loaded.verify_plan(to_query(ex, failcot))
    assert v.verifier == "baseline" and 0.5 <= v.confidence <= 1.0
    (r.path / "baseline.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot load"):
        BaselineVerifier.load(r.path)


def test_the_shipped_small_verifier_loads_from_the_ament_index_and_answers(failcot):
    from f2p_guardian.vlm import model_path

    shipped = GuardianVLM.from_pretrained(model_path(""))
    assert shipped.views == 3 and shipped.image_shape == (120, 160) and shipped.version
    ex = load_examples(failcot, mode="execution")[0]
    q = to_query(ex)
    q.images_before = q.images_after = [np.full((120, 160, 3), 70, np.uint8)] * 3
    v = shipped.verify_execution(q)
    assert v.category == SUCCESS or v.category in CATEGORIES["execution"]
