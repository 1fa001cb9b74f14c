"""Red team, models (issue 43): what a hostile client on the robot's ROS domain tried, each a test.

* a forged parent: an event whose ``model_version`` names a file the attacker wrote;
* a reused event id with other content;
* pickle payloads planted for every model loader (Γ, AFIL, Guardian's baseline and VLM, YOLO,
  SAM): nothing runs, each is refused;
* signed but garbage models: NaN, zeroed under the genuine version string, random, another
  architecture; a version string reused for other bytes;
* the flip race: the checkpoint's path flipped between a signed and an unsigned file while it
  is admitted;
* a path outside the model folders (``/proc/self/environ``): never read;
* the regression gate against the deployed model and absolute floors;
* a private key readable by others at any moment.
"""
from __future__ import annotations

import builtins
import dataclasses
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p_common.files import file_sha256, write_atomic
from f2p_common.weights import CheckpointError, generate_signing_key, sidecar_path
from f2p_failure.events import FailureEvent
from f2p_failure.queue import EventIdConflict, EventQueue
from f2p_planner.model_slot import AdmissionError, AdmissionPolicy, ModelSlot
from f2p_skill_effect.checkpoint import (FORMAT, SHIPPED_MODELS, Checkpoint, load_checkpoint, model_info,
                                         save_checkpoint, shipped_model, sign_checkpoint)
from f2p_skill_effect.model import build_model
from f2p_skill_effect.probe import load_probe, shipped_probe
from support.failure_fixtures import TINY_CONFIG, failure_event, save_tiny_checkpoint, tiny_model

TINY = AdmissionPolicy(min_detection_f1=0.0, min_next_step_accuracy=0.0)


class Payload:
    """A pickle that, when unpickled, writes ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",)


def planted(path: Path, obj) -> Path:
    """``obj`` written with torch.save (a pickle), with a matching ``.sha256`` sidecar: only the
    loader's refusal to unpickle stands between it and the process."""
    torch.save(obj, path)
    sidecar_path(path).write_text(f"{file_sha256(path)}  {path.name}\n")
    return path


# ---------------------------------------------------------------------------- no unpickling anywhere
def _loaders(tmp_path: Path, marker: Path):
    from f2p_afil.checkpoint import FORMAT as AFIL_FORMAT, load_controller
    from f2p_guardian.baseline import BASELINE_FILE, BaselineVerifier
    from f2p_perception.image_segmenters import YOLO_FORMAT, YoloSegmenter, load_sam
    from f2p_skill_effect.checkpoint import load_model

    def weights_file(name, fmt):
        return planted(tmp_path / name, {"format": fmt, "metadata": "{}", "state_dict": {"w": Payload(marker)}})

    baseline = tmp_path / "baseline"
    baseline.mkdir()
    planted(baseline / BASELINE_FILE, {"config": Payload(marker), "state": {}})
    vlm = tmp_path / "vlm"
    vlm.mkdir()
    (vlm / "config.json").write_text('{"model_type": "internvl"}')
    planted(vlm / "pytorch_model.bin", {"w": Payload(marker)})
    return {
        "skill_effect": lambda: load_model(weights_file("gamma.pt", FORMAT)),
        "afil": lambda: load_controller(weights_file("afil.pt", AFIL_FORMAT)),
        "yolo_f2p_format": lambda: YoloSegmenter(weights=str(weights_file("yolo.pt", YOLO_FORMAT))),
        "yolo_ultralytics_pickle": lambda: YoloSegmenter(weights=str(planted(tmp_path / "u.pt", {"model": Payload(marker)}))),
        "sam": lambda: load_sam(planted(tmp_path / "sam.pth", {"image_encoder.w": Payload(marker)})),
        "guardian_baseline": lambda: BaselineVerifier.load(baseline),
        "guardian_vlm": lambda: __import__("f2p_guardian.vlm", fromlist=["GuardianVLM"]).GuardianVLM.from_pretrained(vlm),
    }


@pytest.mark.parametrize("loader", ["skill_effect", "afil", "yolo_f2p_format", "yolo_ultralytics_pickle", "sam",
                                    "guardian_baseline", "guardian_vlm"])
def test_a_pickle_payload_runs_in_no_loader(tmp_path, loader):
    marker = tmp_path / "payload_ran"
    load = _loaders(tmp_path, marker)[loader]
    assert marker.parent.is_dir() and not marker.exists()
    with pytest.raises((CheckpointError, ValueError)):
        load()
    assert not marker.exists(), f"the {loader} loader unpickled the payload"
    torch.load(tmp_path / "u.pt" if loader == "yolo_ultralytics_pickle" else next(
        p for p in tmp_path.rglob("*") if p.suffix in (".pt", ".pth", ".bin")), weights_only=False)
    assert marker.exists(), "the payload is real: an unpickling load runs it"


# ---------------------------------------------------------------------------- admission
@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """The shipped pre-trained model copied into a model folder and signed, its variants, a key."""
    root = tmp_path_factory.mktemp("models")
    key = root / "key.pem"
    public = generate_signing_key(key)
    good = root / "pretrained.pt"
    good.write_bytes(shipped_model().read_bytes())
    sidecar_path(good).write_text(f"{file_sha256(good)}  {good.name}\n")
    sign_checkpoint(good, key)
    base = load_checkpoint(good)

    def variant(name, state_dict=None, config=None, version=None, parent=None, metrics=None):
        path = root / f"{name}.pt"
        save_checkpoint(path, dataclasses.replace(base, state_dict=state_dict or base.state_dict,
                                                  config=config or base.config, version=version or name,
                                                  parent_version=parent, metrics=metrics or {}))
        sign_checkpoint(path, key)
        return path
    sd = base.state_dict
    torch.manual_seed(0)
    return {"root": root, "key": key, "public": public, "good": good, "version": base.version,
            "nan": variant("nan", {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                   for k, v in sd.items()}),
            "zeroed": variant("zeroed", {k: torch.zeros_like(v) for k, v in sd.items()}, version=base.version),
            "random": variant("random", build_model(base.config).state_dict()),
            "two_objects": variant("two_objects", build_model(dataclasses.replace(base.config, max_objects=2)).state_dict(),
                                   config=dataclasses.replace(base.config, max_objects=2)),
            "child": variant("child", {k: v + 1e-4 if v.is_floating_point() else v for k, v in sd.items()},
                             parent=base.version, metrics={"deployable": True})}


def _policy(signed, **changes) -> AdmissionPolicy:
    return dataclasses.replace(AdmissionPolicy(require_signed=True, public_key=signed["public"],
                                               model_dirs=(signed["root"],)), **changes)


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_model_passes_the_planners_admission(name):
    """Robot params name shipped models as the planner's first: each passes the admission every
    candidate passes (a child carries the regression gate's verdict: f2p-gate wrote the real-scale
    model's; without it the stretch and ur5 planners refused to configure)."""
    assert ModelSlot(shipped_model(name)).active().version == load_checkpoint(shipped_model(name)).version


@pytest.mark.parametrize("case, pattern", [
    ("nan", "NaN or infinity"),
    ("zeroed", "already named other bytes"),                     # the genuine version string, other weights
    ("random", "fails the admission probe"),
    ("two_objects", "another architecture than the model serving"),
])
def test_signed_garbage_is_never_admitted(signed, case, pattern):
    slot = ModelSlot(signed["good"], _policy(signed))
    with pytest.raises(AdmissionError, match=pattern) as refused:
        slot.admit(model_info(signed[case]))
    assert refused.value.reason == "not_admissible" and slot.active().version == signed["version"]


def test_the_probe_floor_refuses_zeroed_weights_under_any_version(signed, tmp_path):
    zeroed = load_checkpoint(signed["zeroed"])
    path = signed["root"] / "zeroed_renamed.pt"
    save_checkpoint(path, dataclasses.replace(zeroed, version="zeroed-renamed"))
    slot = ModelSlot(signed["good"], _policy(signed, require_signed=False))
    with pytest.raises(AdmissionError, match=r"fails the admission probe: detection F1 0\.2"):
        slot.admit(model_info(path))
    assert slot.admit(model_info(signed["child"])).version == "child"     # a genuine child passes


def test_a_path_outside_the_model_folders_is_never_read(signed):
    slot = ModelSlot(signed["good"], _policy(signed))
    environ = model_info(signed["good"])
    for uri in ("/proc/self/environ", "file:///etc/passwd", str(signed["root"] / ".." / "elsewhere.pt")):
        with pytest.raises(AdmissionError, match="outside the planner's model folders") as refused:
            slot.admit(dataclasses.replace(environ, uri=uri))
        assert refused.value.reason == "not_permitted"
    link = signed["root"] / "link.pt"
    link.symlink_to("/proc/self/environ")                                 # a link inside pointing out
    with pytest.raises(AdmissionError, match="outside"):
        slot.admit(dataclasses.replace(environ, uri=str(link)))


def test_the_flip_race_admits_only_the_bytes_that_were_verified(tmp_path):
    """The path flips between a signed model and an unsigned one while it is admitted: what is
    admitted is always the signed model, never a mix (one read; issue 43: 4 of 300 got in)."""
    key = tmp_path / "key.pem"
    public = generate_signing_key(key)
    genuine = save_tiny_checkpoint(tmp_path / "genuine.pt")
    sign_checkpoint(genuine, key)
    other = tmp_path / "other.pt"
    save_checkpoint(other, Checkpoint(TINY_CONFIG, {k: v * 1.5 if v.is_floating_point() else v
                                                    for k, v in tiny_model().state_dict().items()}, "other"))
    slot = ModelSlot(genuine, dataclasses.replace(TINY, require_signed=True, public_key=public, model_dirs=(tmp_path,)))
    want = load_checkpoint(genuine).state_dict
    link, stop = tmp_path / "flipping.pt", threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            tmp = tmp_path / f".flip{k % 2}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(genuine if k % 2 else other)
            os.replace(tmp, link)
            k += 1
    request = dataclasses.replace(model_info(genuine), uri=str(link))
    link.symlink_to(genuine)
    flipper = threading.Thread(target=flip)
    flipper.start()
    admitted = refused = 0
    try:
        for _ in range(150):
            try:
                loaded = slot.admit(request)
            except AdmissionError as exc:
                assert exc.reason == "not_authentic", exc
                refused += 1
                continue
            admitted += 1
            assert all(torch.equal(loaded.checkpoint.state_dict[k], want[k]) for k in want)
    finally:
        stop.set()
        flipper.join()
    assert admitted > 0 and refused > 0, (admitted, refused)          # the race did happen both ways


def test_the_probe_ships_and_fits_the_shipped_models():
    probe = load_probe(shipped_probe(), 16)
    assert probe["mask"].shape == (48, 16) and np.isfinite(probe["points_t"]).all()


# ---------------------------------------------------------------------------- the learner
def test_a_forged_parent_path_in_an_event_is_never_the_parent(tmp_path):
    from f2p_learning.jobs import Learner, LearnerConfig
    configured = save_tiny_checkpoint(tmp_path / "configured.pt")
    forged = tmp_path / "evil" / "model.pt"
    forged.parent.mkdir()
    save_checkpoint(forged, Checkpoint(TINY_CONFIG, tiny_model().state_dict(), "evil"))
    learner = Learner(LearnerConfig(tmp_path / "queue", tmp_path / "store", configured))
    for version in (str(forged), str(forged.parent), "../evil", "/etc/passwd", ""):
        event = dataclasses.replace(failure_event(), model_version=version)
        assert learner.parent_for(event) == configured, version
    assert learner.store.find("../evil") is None and learner.registry_path(str(forged.parent)) is None
    assert not learner.note_deployed("evil", file_sha256(forged))          # unknown to the registry: ignored
    assert learner.note_deployed("tiny", file_sha256(configured)) and learner.deployed == configured


def test_the_gate_compares_with_the_deployed_model_and_floors(signed):
    from f2p_learning.learn import regression_gate
    from f2p_skill_effect.checkpoint import load_model
    data = load_probe(shipped_probe(), 16)
    deployed, _ = load_model(signed["good"])
    random_a, _ = load_model(signed["random"])
    random_b = build_model(deployed.cfg).eval()
    floors = {"detection_f1": 0.85, "next_step_accuracy": 0.85}
    # a random parent and a random child: within any tolerance of each other, below the floors
    gate = regression_gate(random_a, random_b, data, 1.0, floors)
    assert not gate["deployable"] and "below its floor" in gate["reason"]
    # the same child against the deployed model: a drop beyond tolerance too
    gate = regression_gate(deployed, random_b, data, 0.02, floors)
    assert not gate["deployable"] and "worst drop" in gate["reason"]
    assert regression_gate(deployed, deployed, data, 0.02, floors)["deployable"]


def test_a_reused_event_id_with_other_content_is_refused(tmp_path):
    queue = EventQueue(tmp_path / "q", ("shipped",))
    genuine = failure_event()
    assert queue.put(genuine)[1]
    assert queue.put(genuine)[1] is False                                   # the same event again: acknowledged
    forged = dataclasses.replace(genuine, params=[p * 0.5 for p in genuine.params])
    with pytest.raises(EventIdConflict, match="other content"):
        queue.put(forged)
    queue.move(genuine.event_id, "shipped")
    with pytest.raises(EventIdConflict):
        queue.put(forged)
    assert queue.put(dataclasses.replace(forged, event_id=FailureEvent.new_id()))[1]   # its own id: fine


# ---------------------------------------------------------------------------- keys
def test_a_private_key_is_never_readable_by_others(tmp_path, monkeypatch):
    modes = []
    real_replace = os.replace

    def spy(src, dst):                       # the key's mode at the moment it appears under its name
        modes.append((Path(dst).name, stat.S_IMODE(os.stat(src).st_mode)))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    os.umask(0o022)
    generate_signing_key(tmp_path / "k.pem")
    assert ("k.pem", 0o600) in modes and stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    write_atomic(tmp_path / "public.txt", "x")
    assert stat.S_IMODE((tmp_path / "public.txt").stat().st_mode) == 0o644
