"""Models by content (f2p_common.model_transfer): a fetch into a robot's cache that resumes after a
cut, refuses and re-asks for damaged chunks, and never leaves a ``<sha256>.pt`` that is not
whole and hashing to its name."""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib

import numpy as np
import pytest

from f2p_common.interfaces import ModelInfo
from f2p_common.model_transfer import ModelCache, TransferError, read_chunk

CHUNK = 64 * 1024


@pytest.fixture
def model(tmp_path):
    """A 'checkpoint' of 300 KiB + 5 bytes (5 chunks, the last one short) and its info."""
    data = np.random.default_rng(0).bytes(300 * 1024 + 5)
    path = tmp_path / "learner" / "model.pt"
    path.parent.mkdir()
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    return path, ModelInfo(name="skill_effect", version="v1", parent_version="v0", sha256=sha, signature="ab" * 64,
                           uri=path.as_uri(), metrics={"deployable": 1.0}), data


def _source(path, info, calls=None, damage=lambda k, chunk: chunk, cut_at=None):
    """The learner's side: read_chunk from ``path``; ``damage(k, chunk)`` may alter the k-th answer;
    the source stops answering (TransferError not_found) at ``cut_at`` bytes."""
    calls = [] if calls is None else calls

    def get_chunk(sha, offset, n):
        if sha != info.sha256:
            raise TransferError(f"no model {sha}", "not_found")
        if cut_at is not None and offset >= cut_at:
            raise TransferError("the learner stopped answering", "not_found")
        calls.append(offset)
        return damage(len(calls) - 1, read_chunk(path, info, offset, n))
    return get_chunk


def test_a_model_is_fetched_whole_with_its_sidecars_and_found_again(model, tmp_path):
    path, info, data = model
    cache = ModelCache(tmp_path / "robot")
    seen = []
    got = cache.fetch(info.sha256, _source(path, info), CHUNK, progress=lambda done, size: seen.append((done, size)))
    assert got.path == tmp_path / "robot" / f"{info.sha256}.pt" and got.path.read_bytes() == data
    assert (got.fetched_bytes, got.resumed_from, got.refetched) == (len(data), 0, 0)
    assert seen[-1] == (len(data), len(data)) and len(seen) == 5
    assert got.info.signature == info.signature and got.info.version == "v1" and got.info.uri == got.path.as_uri()
    assert (tmp_path / "robot" / f"{info.sha256}.pt.sha256").read_text().split()[0] == info.sha256
    assert not cache.part_path(info.sha256).exists()
    again = cache.fetch(info.sha256, lambda *_a: pytest.fail("a cached model is not fetched again"))
    assert again.path == got.path and again.fetched_bytes == 0 and again.info.signature == info.signature


def test_a_cut_transfer_resumes_from_the_bytes_on_disk(model, tmp_path):
    path, info, data = model
    cache = ModelCache(tmp_path / "robot")
    with pytest.raises(TransferError, match="stopped answering") as err:
        cache.fetch(info.sha256, _source(path, info, cut_at=3 * CHUNK), CHUNK)
    assert err.value.reason == "not_found"
    assert cache.find(info.sha256) is None and cache.partial_bytes(info.sha256) == 3 * CHUNK
    calls = []
    got = cache.fetch(info.sha256, _source(path, info, calls), CHUNK)
    assert got.resumed_from == 3 * CHUNK and got.fetched_bytes == len(data) - 3 * CHUNK
    assert calls[0] == 3 * CHUNK and got.path.read_bytes() == data


def test_a_damaged_chunk_is_refused_and_asked_for_again(model, tmp_path):
    path, info, data = model

    def flip_second(k, chunk):
        if k != 1:
            return chunk
        bad = bytearray(chunk.data)
        bad[100] ^= 0xFF
        return dataclasses.replace(chunk, data=bytes(bad))
    got = ModelCache(tmp_path / "robot").fetch(info.sha256, _source(path, info, damage=flip_second), CHUNK)
    assert got.refetched == 1 and got.path.read_bytes() == data


@pytest.mark.parametrize("damage, why", [
    (lambda k, c: dataclasses.replace(c, data=c.data[:-1] + bytes([c.data[-1] ^ 1])) if k >= 2 else c,
     "do not hash to its chunk_sha256"),
    (lambda k, c: dataclasses.replace(c, offset=c.offset + 1) if k >= 2 else c, "starts at"),
    (lambda k, c: dataclasses.replace(c, info=dataclasses.replace(c.info, sha256="0" * 64)) if k >= 2 else c,
     "another model"),
    (lambda k, c: dataclasses.replace(c, size=c.size + 1) if k >= 2 else c, "size changed"),
])
def test_chunks_that_keep_failing_their_check_end_the_fetch_and_keep_what_was_good(model, tmp_path, damage, why):
    path, info, _data = model
    cache = ModelCache(tmp_path / "robot")
    with pytest.raises(TransferError, match=why) as err:
        cache.fetch(info.sha256, _source(path, info, damage=damage), CHUNK, retries=2)
    assert err.value.reason == "not_authentic" and "failed its check 3 times" in str(err.value)
    assert cache.find(info.sha256) is None and cache.partial_bytes(info.sha256) == 2 * CHUNK


def test_a_hundred_cuts_at_random_offsets_with_torn_tails_never_serve_a_corrupt_model(model, tmp_path):
    """A robot killed mid-transfer: the part file holds the bytes before the cut, and sometimes
    a torn tail of garbage (a write that did not reach the disk whole). Every fetch after it
    ends with the model's exact bytes: a part that does not hash to its name is fetched again."""
    path, info, data = model
    rng = np.random.default_rng(1)
    served_corrupt = refetched_whole = 0
    for k in range(100):
        cache = ModelCache(tmp_path / f"robot{k}")
        cut = int(rng.integers(0, len(data) + 1))
        cache.folder.mkdir()
        tail = rng.bytes(int(rng.integers(1, 4096))) if rng.random() < 0.5 else b""
        cache.part_path(info.sha256).write_bytes(data[:cut] + tail)
        calls = []
        got = cache.fetch(info.sha256, _source(path, info, calls), CHUNK)
        served_corrupt += got.path.read_bytes() != data
        refetched_whole += calls.count(0) > 0 and cut > 0
    assert served_corrupt == 0
    assert refetched_whole > 0                   # torn tails were caught and fetched again from the start


def test_a_source_that_sends_another_file_under_the_name_is_refused(tmp_path, model):
    path, info, data = model
    other = tmp_path / "other.pt"
    other.write_bytes(data[::-1])
    cache = ModelCache(tmp_path / "robot")
    with pytest.raises(TransferError, match="does not hash to its name") as err:
        cache.fetch(info.sha256, _source(other, info), CHUNK)
    assert err.value.reason == "not_authentic"
    assert cache.find(info.sha256) is None and cache.partial_bytes(info.sha256) == 0


def test_too_large_a_model_busy_names_and_malformed_names_are_refused(model, tmp_path):
    path, info, _data = model
    with pytest.raises(TransferError, match="more than the 1000") as err:
        ModelCache(tmp_path / "small", max_bytes=1000).fetch(info.sha256, _source(path, info), CHUNK)
    assert err.value.reason == "too_large"
    cache = ModelCache(tmp_path / "robot")
    cache.folder.mkdir()
    with open(cache.part_path(info.sha256), "ab") as f:            # another process is fetching it
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TransferError, match="another fetch") as err:
            cache.fetch(info.sha256, _source(path, info), CHUNK)
    assert err.value.reason == "busy"
    for name in ("../../etc/passwd", "ABC", "g" * 64, ""):
        with pytest.raises(ValueError, match="is not a SHA-256"):
            cache.fetch(name, _source(path, info), CHUNK)


def test_read_chunk_serves_ranges_and_nothing_past_the_end(model):
    path, info, data = model
    c = read_chunk(path, info, 10, 100)
    assert (c.offset, c.size, c.data, c.info.uri) == (10, len(data), data[10:110], "")
    assert c.chunk_sha256 == hashlib.sha256(data[10:110]).hexdigest()
    assert read_chunk(path, info, len(data) + 7, 100).data == b""
    assert read_chunk(path, info, len(data) - 3, 0).data == data[-3:]     # 0: the default chunk size
    with pytest.raises(ValueError):
        read_chunk(path, info, -1, 100)


def test_prune_keeps_the_newest_and_the_models_named(model, tmp_path):
    import os
    cache = ModelCache(tmp_path / "robot")
    cache.folder.mkdir()
    shas = []
    for k in range(5):
        sha = hashlib.sha256(bytes([k])).hexdigest()
        cache.path(sha).write_bytes(bytes([k]))
        (cache.folder / f"{sha}.pt.sha256").write_text(sha)
        os.utime(cache.path(sha), ns=(k * 10 ** 9, k * 10 ** 9))
        shas.append(sha)
    cache.part_path(model[1].sha256).write_bytes(b"partial")
    removed = cache.prune(keep={shas[0]}, max_models=2)
    assert sorted(removed) == sorted(cache.path(s) for s in shas[1:3])
    assert [cache.find(s) is not None for s in shas] == [True, False, False, True, True]
    assert not (cache.folder / f"{shas[1]}.pt.sha256").exists() and cache.partial_bytes(model[1].sha256) == 7
