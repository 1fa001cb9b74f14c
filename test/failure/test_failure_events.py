"""Failure events F = (O_F, R_F, φ_F, R'_F) (paper 000 §4): validation and lossless storage."""
import io
import json
import zipfile

import numpy as np
import pytest

from f2p_failure.events import (CATEGORIES, EVENT_FORMAT, FailureEvent, FailureEventError, list_events, load_event,
                               sha256sums,
                                save_event)
from support.failure_fixtures import handmade_event as make_event

def rewrite(path, json_edit=None, arrays_edit=None, reseal=False):
    """Rewrite an event file's members: json_edit(doc) / arrays_edit(dict of arrays) in place;
    ``reseal`` recomputes SHA256SUMS (an edit by someone who knows the format)."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    if json_edit is not None:
        doc = json.loads(members["event.json"])
        json_edit(doc)
        members["event.json"] = json.dumps(doc).encode()
    if arrays_edit is not None:
        with np.load(io.BytesIO(members["arrays.npz"])) as z:
            arrays = {k: z[k] for k in z.files}
        arrays_edit(arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members["arrays.npz"] = buf.getvalue()
    if reseal:
        members["SHA256SUMS"] = sha256sums({k: v for k, v in members.items() if k != "SHA256SUMS"})
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("with_after", [False, True])
def test_round_trip_is_exact(tmp_path, with_after):
    event = make_event(with_after=with_after)
    path = save_event(event, tmp_path)
    assert path == tmp_path / f"{event.event_id}.f2pevent"
    back = load_event(path)
    assert back == event
    for name in ("relations_before_unary", "relations_before_binary", "observed_after_unary",
                 "observed_after_binary"):
        assert getattr(back, name).dtype == bool
    assert back.predicted_after_binary.dtype == np.float32
    assert all(c.dtype == np.float32 for c in back.observation_before + back.observation_after)
    assert len(back.observation_after) == (3 if with_after else 0)
    assert all(type(p) is float for p in back.params)
    assert type(back.target) is int and type(back.step_index) is int
    assert back.mismatches == event.mismatches and back.context == event.context
    assert back.num_segments == 3
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("arrays.npz").compress_type == zipfile.ZIP_STORED
        assert json.loads(zf.read("event.json"))["format"] == EVENT_FORMAT


def test_saving_twice_gives_identical_bytes(tmp_path):
    a = save_event(make_event(with_after=True), tmp_path / "a").read_bytes()
    b = save_event(make_event(with_after=True), tmp_path / "b").read_bytes()
    assert a == b
    assert save_event(make_event(with_after=True), tmp_path / "a").read_bytes() == a
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_new_id_and_categories():
    assert FailureEvent.new_id() != FailureEvent.new_id()
    assert len(FailureEvent.new_id()) == 36
    assert CATEGORIES.index("sim_to_real_gap") == 2  # FailureEvent.msg CATEGORY_SIM_TO_REAL_GAP


def test_truncated_file_refused(tmp_path):
    path = save_event(make_event(), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FailureEventError, match="truncated"):
        load_event(path)


def test_missing_or_foreign_files_refused(tmp_path):
    with pytest.raises(FailureEventError, match="does not exist"):
        load_event(tmp_path / "nope.f2pevent")
    junk = tmp_path / "junk.f2pevent"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(FailureEventError, match="junk.f2pevent"):
        load_event(junk)
    path = save_event(make_event(), tmp_path)
    with zipfile.ZipFile(path) as zf:
        only_json = zf.read("event.json")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("event.json", only_json)
    with pytest.raises(FailureEventError, match="missing member 'arrays.npz'"):
        load_event(path)


def test_tampered_arrays_refused(tmp_path):
    path = save_event(make_event(), tmp_path)

    def nudge(arrays):
        arrays["observation_before_points"][0, 0] += np.float32(0.5)
    rewrite(path, arrays_edit=nudge)
    with pytest.raises(FailureEventError, match="sha256"):
        load_event(path)


def test_unknown_skill_refused_at_save_and_at_load(tmp_path):
    with pytest.raises(FailureEventError, match="unknown skill 'teleport'; known: pick_place, push"):
        save_event(make_event(skill="teleport"), tmp_path)
    assert list_events(tmp_path) == []
    path = save_event(make_event(), tmp_path)
    rewrite(path, json_edit=lambda doc: doc.update(skill="teleport"), reseal=True)
    with pytest.raises(FailureEventError, match=r"f2pevent: unknown skill 'teleport'"):
        load_event(path)


@pytest.mark.parametrize("edit", [
    lambda doc: doc["params"].__setitem__(0, 0.3),                       # the failed action
    lambda doc: doc["segment_labels"].__setitem__(2, "cuboid"),          # a label
    lambda doc: doc["mismatches"].pop(),                                 # the mismatch list
])
def test_every_byte_of_the_event_json_is_covered(tmp_path, edit):
    path = save_event(make_event(), tmp_path)
    rewrite(path, json_edit=edit)
    with pytest.raises(FailureEventError, match="do not match their sha256 in SHA256SUMS"):
        load_event(path)


def test_events_without_checksums_are_refused(tmp_path):
    path = save_event(make_event(), tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != "SHA256SUMS"}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(FailureEventError, match="missing member 'SHA256SUMS'"):
        load_event(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_cloud_refused(bad):
    event = make_event()
    event.observation_before[1][2, 0] = bad
    with pytest.raises(FailureEventError, match=r"observation_before\[1\] \(segment 'bin_1'\).*NaN or inf"):
        event.validate()


def test_empty_cloud_is_a_missing_segment():
    event = make_event()
    event.observation_before[2] = np.zeros((0, 3), np.float32)
    with pytest.raises(FailureEventError, match=r"observation_before\[2\] \(segment 'cup_2'\): missing segment"):
        event.validate()
    # After the skill a segment may be unseen (e.g. put inside a closed drawer).
    after = make_event(with_after=True)
    after.observation_after[2] = np.zeros((0, 3), np.float32)
    after.validate()


@pytest.mark.parametrize("params, message", [
    ([0.1, 0.2], "takes 3 parameters"),
    ([0.1, 0.2, 5.0], "outside its box"),
    ([0.1, float("nan"), 0.0], r"params\[1\] is not finite"),
])
def test_bad_params_refused(tmp_path, params, message):
    with pytest.raises(FailureEventError, match=message):
        save_event(make_event(params=params), tmp_path)


def test_wrong_format_refused(tmp_path):
    path = save_event(make_event(), tmp_path)
    rewrite(path, json_edit=lambda doc: doc.update(format="f2p-failure-event/0"))
    with pytest.raises(FailureEventError, match="format 'f2p-failure-event/0'"):
        load_event(path)


def test_bad_json_refused(tmp_path):
    path = save_event(make_event(), tmp_path)
    with zipfile.ZipFile(path) as zf:
        npz = zf.read("arrays.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("event.json", b"{not json")
        zf.writestr("arrays.npz", npz)
    with pytest.raises(FailureEventError, match="not valid JSON"):
        load_event(path)


S3 = (3, 3, 9)


@pytest.mark.parametrize("changes, message", [
    (dict(segment_ids=[], segment_labels=[], observation_before=[]), "no segments"),
    (dict(segment_labels=["table", "bin"]), "segment count mismatch"),
    (dict(segment_ids=["a", "b", "a"]), "segment 2: duplicate segment id 'a'"),
    (dict(segment_labels=["table", "bin", "teapot"]), "segment 2 .*unknown label 'teapot'"),
    (dict(relations_before_binary=np.zeros((3, 3, 8), bool)), r"relations_before_binary: shape must be \(3, 3, 9\)"),
    (dict(observed_after_unary=np.zeros((2, 3), bool)), r"observed_after_unary: shape must be \(3, 3\)"),
    (dict(observed_after_binary=np.zeros(S3, np.uint8)), "observed_after_binary: must be bool"),
    (dict(predicted_after_binary=np.full(S3, 1.5, np.float32)), "predicted_after_binary: probability 1.5"),
    (dict(predicted_after_unary=np.full((3, 3), np.nan, np.float32)), "predicted_after_unary: contains NaN"),
    (dict(observed_after_binary=np.ones(S3, bool)), "observed_after_binary: a segment has no relation with itself"),
    (dict(target=3), "target 3 out of range"),
    (dict(step_index=-1), "step_index"),
    (dict(category="bad_luck"), "unknown category 'bad_luck'"),
    (dict(observation_after=[np.zeros((2, 3), np.float32)]), "observation_after has 1 segments"),
    (dict(event_id=""), "event_id is empty"),
    (dict(event_id="../escape"), "not usable as a file name"),
    (dict(observation_before=[np.zeros((4, 2), np.float32)] * 3), r"must be a \(P, 3\) numpy array"),
    (dict(mismatches=[{"predicate": "flying", "subject": 0, "object": None, "predicted": 0.5,
                       "observed": True}]), "unknown predicate 'flying'"),
    (dict(context={"when": (1, 2)}), "context does not survive JSON"),
    (dict(mismatches=[{"predicate": "inside", "subject": 2, "object": 1, "predicted": 0.9, "observed": False}]),
     r"mismatches\[0\]: predicted 0.9 is not predicted_after's 0.89999"),
    (dict(mismatches=[{"predicate": "movable", "subject": 2, "object": None, "predicted": 0.25, "observed": False}]),
     r"mismatches\[0\]: observed False is not observed_after's True"),
])
def test_validate_refuses_malformed_events(changes, message):
    with pytest.raises(FailureEventError, match=message):
        make_event(**changes).validate()


def test_list_events(tmp_path):
    assert list_events(tmp_path / "absent") == []
    ids = ["b0000000-0000-4000-8000-000000000000", "a0000000-0000-4000-8000-000000000000"]
    for event_id in ids:
        save_event(make_event(event_id=event_id), tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_events(tmp_path)] == [f"{i}.f2pevent" for i in sorted(ids)]
