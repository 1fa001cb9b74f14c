"""The one on-disk format of skill-effect datasets, with a writer and a loader.

The simulator writes it (``f2p_datasets.datagen``, the learner's D+) and training reads it
(``f2p_training``), so it lives here, where neither has to import the other.

A dataset D = {(s_t, O_t, φ_t, a_t, s_t+1, O_t+1, R_t, R_t+1)} (paper 000 §3) is a folder:

``manifest.json``   written last: ``format`` (= FORMAT), the generation parameters, the
                    vocabularies (relations, skills, classes) and, per shard, its file name,
                    transition count, flagged count and SHA-256. Sorted keys, no timestamps:
                    the same seed and parameters give the same bytes.
``shard_00000.npz`` ... one uncompressed zip of .npy arrays per shard, written to a temporary
                    name and renamed, so a shard file that exists is complete (resume skips it).
                    Zip member timestamps are fixed so the bytes depend on content only.

Arrays of a shard with T transitions, S = most segments of any scene in the shard (rows of
smaller scenes are padded: ``seg_class`` = -1, zeros elsewhere), K points per segment:

=====================  ==============  =====================================================
name                   shape, dtype    meaning
=====================  ==============  =====================================================
scene_index            (T,) int32      row of ``scenes_json`` the transition belongs to
step                   (T,) int16      step within that scene's episode (s_t+1 chains on)
seg_class              (T,S) int8      index in vocabulary.OBJECT_CLASSES, -1 = padding
skill                  (T,) int8       φ_t: index in vocabulary.SKILLS order
target                 (T,) int16      segment the skill acts on
params                 (T,3) float32   a_t in the skill's parameter order, zero-padded
obs_t_points           (T,S,K,3) f32   O_t: per-segment partial-view points (world, m)
obs_t_counts           (T,S) int32     raw ray hits per segment before resampling (0 = unseen)
obs_t1_points/counts                   O_t+1, same layout
state_t_pose           (T,S,7) f32     s_t: body position + quaternion wxyz
state_t_box            (T,S,6) f32     s_t: world AABB lower xyz, upper xyz
state_t_drawer         (T,S) f32       s_t: drawer opening (m), NaN for non-drawers
state_t1_*                             s_t+1, same layout
state_phys             (T,S,2) f32     mass (kg, 0 = static) and friction per segment
rel_t_unary            (T,S,3) uint8   R_t unary relations (vocabulary order)
rel_t_binary           (T,S,S,9) uint8 R_t binary relations [subject, object, predicate]
rel_t1_unary/binary                    R_t+1
executed               (T,) uint8      1 if the skill ran (0: refused, e.g. covered grasp)
grasp_success          (T,) int8       1/0, -1 where not applicable
achieved               (T,3) float32   SkillReport.achieved (padded with zeros)
flags                  (T,) uint8      bitmask FLAG_*: 0 = trustworthy
scenes_json            (B,) uint8      UTF-8 JSON list: per scene task, n_objects, seed,
                                       camera, segment names/classes and the SceneSpec
=====================  ==============  =====================================================

The loader skips transitions flagged unstable or with an unseen segment unless asked, and
counts what it skipped.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from f2p_common.files import file_sha256, write_atomic
from f2p_common.vocabulary import OBJECT_CLASSES

FORMAT = "f2p-sim-transitions/1"
FLAG_NOT_EXECUTED = 1     # the skill refused to run (e.g. grasp point covered)
FLAG_UNSTABLE = 2         # flying objects / penetration after settling (SimBackend.stability_issues)
FLAG_UNSEEN_SEGMENT = 4   # a segment got no points in O_t or O_t+1
#: Skipped by the loader unless asked: untrustworthy physics, or a segment without points.
DEFAULT_SKIP_FLAGS = FLAG_UNSTABLE | FLAG_UNSEEN_SEGMENT
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def class_indices(classes) -> np.ndarray:
    """(S,) int8 ``seg_class`` row of a scene's segment classes (ValueError for an unknown class)."""
    unknown = sorted({c for c in classes if c not in OBJECT_CLASSES})
    if unknown:
        raise ValueError(f"unknown object classes {unknown}; known: {', '.join(OBJECT_CLASSES)}")
    return np.array([OBJECT_CLASSES.index(c) for c in classes], dtype=np.int8)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.npz"


def write_shard(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> str:
    """Write arrays durably, atomically and deterministically; return the file's SHA-256."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    data = buf.getvalue()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_shard(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a shard; ValueError naming the file if it is truncated or corrupt."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"corrupt or truncated shard {path}: {e}") from None


def scenes_of(arrays: dict[str, np.ndarray]) -> list[dict]:
    return json.loads(bytes(arrays["scenes_json"]).decode("utf-8"))


def write_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    write_atomic(Path(folder) / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no manifest.json (generation unfinished? rerun f2p-datagen to resume)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, this loader reads {FORMAT!r}")
    return manifest


class SimDataset:
    """Loader of a generated dataset folder (see module docstring)."""

    def __init__(self, folder: str | os.PathLike, verify: bool = False):
        self.folder = Path(folder)
        self.manifest = read_manifest(folder)
        self.skipped_flagged = 0
        if verify:
            for sh in self.manifest["shards"]:
                digest = file_sha256(self.folder / sh["file"])
                if digest != sh["sha256"]:
                    raise ValueError(f"shard {sh['file']} does not match its manifest checksum")

    def __len__(self) -> int:
        return sum(sh["transitions"] for sh in self.manifest["shards"])

    def shards(self) -> Iterator[dict[str, np.ndarray]]:
        for sh in self.manifest["shards"]:
            yield read_shard(self.folder / sh["file"])

    def transitions(self, skip_flags: int = DEFAULT_SKIP_FLAGS) -> Iterator[dict]:
        """One dict per transition with padding removed (arrays sized to the scene's segments).

        Transitions whose flags intersect ``skip_flags`` are skipped and counted in
        ``self.skipped_flagged`` (pass 0 to get everything). By default refused skills stay:
        "nothing happened" is a valid effect to learn."""
        self.skipped_flagged = 0
        for arrays in self.shards():
            scenes = scenes_of(arrays)
            for t in range(arrays["skill"].shape[0]):
                if int(arrays["flags"][t]) & skip_flags:
                    self.skipped_flagged += 1
                    continue
                n = int(np.count_nonzero(arrays["seg_class"][t] >= 0))
                out = {"scene": scenes[int(arrays["scene_index"][t])]}
                for k, v in arrays.items():
                    if k == "scenes_json":
                        continue
                    row = v[t]
                    if row.ndim >= 1 and k.startswith(("obs_", "state_", "rel_", "seg_")):
                        row = row[:n]
                        if k.endswith("_binary"):
                            row = row[:, :n]
                    out[k] = row
                yield out
