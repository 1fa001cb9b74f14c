"""FailCoT data generation (paper 002 §III-B/C/E) at a small size: balanced success / failure
with labels from physics, both modes, held-out variants and camera, images of every view,
traces in Guardian's answer format, resumable shards and a manifest."""
import json

import numpy as np
import pytest

from f2p_guardian.examples import load_examples, read_image, to_query
from f2p_guardian.symbolic import SymbolicVerifier
from f2p_guardian.taxonomy import CATEGORIES, parse_answer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from f2p_datasets.failcot import FailCoTConfig, generate

    out = tmp_path_factory.mktemp("failcot")
    cfg = FailCoTConfig(str(out), scenes_per_variant=1, object_counts=(3, 5), image_width=64, image_height=48)
    seen = []
    result = generate(cfg, lambda done, total, shard: seen.append((done, total)))
    return cfg, result, seen


def test_every_scene_gives_balanced_labelled_examples_of_both_modes(dataset):
    cfg, result, seen = dataset
    assert seen[-1] == (6, 6) and result.shards + len(result.skipped) == 6 and result.shards >= 5
    examples = load_examples(cfg.out)
    for mode in ("plan", "execution"):
        mine = [e for e in examples if e["mode"] == mode]
        failures = [e for e in mine if e["label"] == "failure"]
        successes = len(mine) - len(failures)
        assert successes and len(failures) >= 0.7 * successes, (mode, successes, len(failures))
        assert {e["category"] for e in failures} <= set(CATEGORIES[mode])
    splits = {(e["task"], e["n_objects"]): e["split"] for e in examples}
    assert splits[("transport", 5)] == "test" and splits[("organize", 3)] == "val" and splits[("transport", 3)] == "train"
    manifest = json.loads((result.root / "manifest.json").read_text())
    assert manifest["examples"] == result.examples and len(manifest["shards"]) == result.shards


def test_examples_hold_views_traces_and_queries(dataset):
    cfg, _, _ = dataset
    for ex in load_examples(cfg.out):
        cams = ("front", "left_high", "right_low") if ex["split"] == "train" else ("front", "left_high", "right_high")
        assert tuple(ex["views"]) == cams
        groups = ex["images"].values()
        assert all(len(paths) == 3 and all(p.endswith(f"_{c}.png") for p, c in zip(paths, cams)) for paths in groups)
        reasoning, success, category = parse_answer(ex["answer"], ex["mode"])
        assert reasoning == ex["reasoning"] and success == (ex["label"] == "success") and category == ex["category"]
        q = to_query(ex, cfg.out)
        images = q.images if ex["mode"] == "plan" else q.images_before + q.images_after
        assert all(im.shape == (48, 64, 3) and im.dtype == np.uint8 for im in images)
        if ex["category"] == "no_progress":
            assert ex["images"]["before"] == ex["images"]["after"]
    im = read_image(cfg.out, load_examples(cfg.out)[0]["images"]["initial"][0])
    assert im.std() > 5                                      # a rendered scene, not a blank frame


def test_physics_failures_really_failed_and_the_symbolic_verifier_agrees(dataset):
    cfg, _, _ = dataset
    examples = load_examples(cfg.out)
    perturbed = [e for e in examples if e["mode"] == "execution" and e["perturbation"]
                 and "revert" not in e["perturbation"] and "instruction" not in e["perturbation"]]
    for e in perturbed:              # the step's target ended away from where the reference put it
        assert e["scene_after"] != e["scene"] or e["category"] in ("no_gripper_close", "imprecise_grasp")
    sym = SymbolicVerifier()
    right = 0
    for e in examples:
        q = to_query(e)
        v = sym.verify_plan(q) if e["mode"] == "plan" else sym.verify_execution(q)
        right += v.success == (e["label"] == "success")
    assert right >= 0.9 * len(examples), (right, len(examples))


def test_an_interrupted_run_resumes_and_a_bad_config_is_refused(dataset, tmp_path):
    from f2p_datasets.failcot import FailCoTConfig, generate

    cfg, result, _ = dataset
    again = generate(cfg)
    assert again.generated == 0 and again.examples == result.examples
    for bad in ({"scenes_per_variant": 0}, {"layout": "moon"}, {"shard_index": 2, "shard_count": 2},
                {"tasks": ("juggling",)}, {"object_counts": (4,)}):
        with pytest.raises(ValueError):
            FailCoTConfig(str(tmp_path), **bad)
    halves = [FailCoTConfig(str(tmp_path), shard_index=i, shard_count=2).scenes() for i in (0, 1)]
    assert not set(halves[0]) & set(halves[1]) and len(halves[0]) + len(halves[1]) == len(FailCoTConfig("x").scenes())
