"""Synthetic skill-effect data for the model and training tests: a tiny model config, synthetic
transitions and a dataset folder of them.

Synthetic transitions (no simulator, so they are fast and exactly reproducible): each object
is a small cube of points around a centre; pick_place moves the target's centre by (dx, dy,
dz); relations are computed from centres (left/right/front/behind/above/below by sign of the
centre difference, in_contact when centres are closer than 0.15 m); unary: object 0 movable.
"""
import json

import numpy as np
import torch

from f2p_common.dataset import FLAG_UNSEEN_SEGMENT, FORMAT, shard_name, write_manifest, write_shard
from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS
from f2p_skill_effect.model import ModelConfig

TINY = ModelConfig(max_objects=4, sa_npoints=(16, 4), sa_nsamples=(4, 4), sa_widths=(16, 32, 32),
                   id_dim=32, skill_hidden=32, d_model=64, ff_dim=64, dec_hidden=32)


def relations_from_centres(c):
    n = c.shape[0]
    u = np.zeros((n, len(UNARY_RELATIONS)), np.uint8)
    u[0, UNARY_RELATIONS.index("movable")] = 1
    b = np.zeros((n, n, len(BINARY_RELATIONS)), np.uint8)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = c[i] - c[j]
            b[i, j, BINARY_RELATIONS.index("left")] = d[1] > 0
            b[i, j, BINARY_RELATIONS.index("right")] = d[1] < 0
            b[i, j, BINARY_RELATIONS.index("front")] = d[0] < 0
            b[i, j, BINARY_RELATIONS.index("behind")] = d[0] > 0
            b[i, j, BINARY_RELATIONS.index("above")] = d[2] > 0
            b[i, j, BINARY_RELATIONS.index("below")] = d[2] < 0
            b[i, j, BINARY_RELATIONS.index("in_contact")] = np.linalg.norm(d) < 0.15
    return u, b


def synthetic_batch(n_transitions=6, n_objects=3, n_points=32, seed=0, max_objects=4):
    rng = np.random.default_rng(seed)
    T, N, P = n_transitions, max_objects, n_points
    out = {k: np.zeros(s, np.float32) for k, s in {
        "points_t": (T, N, P, 3), "points_t1": (T, N, P, 3), "pos_t": (T, N, 3), "pos_t1": (T, N, 3),
        "unary_t": (T, N, 3), "unary_t1": (T, N, 3), "binary_t": (T, N, N, 9), "binary_t1": (T, N, N, 9),
        "params": (T, 3)}.items()}
    out["mask"] = np.zeros((T, N), bool)
    out["skill"] = np.zeros(T, np.int64)
    out["target"] = np.zeros(T, np.int64)
    for t in range(T):
        c = rng.uniform(-0.3, 0.3, (n_objects, 3))
        a = rng.uniform(SKILLS["pick_place"].low, SKILLS["pick_place"].high) * 0.5
        c1 = c.copy()
        c1[0] += a
        out["params"][t] = a
        out["mask"][t, :n_objects] = True
        for key, cc in (("t", c), ("t1", c1)):
            out["points_" + key][t, :n_objects] = cc[:, None] + rng.uniform(-0.03, 0.03, (n_objects, P, 3))
            out["pos_" + key][t, :n_objects] = cc
            u, b = relations_from_centres(cc)
            out["unary_" + key][t, :n_objects] = u
            out["binary_" + key][t, :n_objects, :n_objects] = b
    return {k: torch.from_numpy(v) for k, v in out.items()}


def write_dataset(folder, seed, unseen=()):
    """A synthetic dataset; ``unseen``: (transition, "t" or "t1", segment) that got no points there
    (flagged FLAG_UNSEEN_SEGMENT, as datagen flags them)."""
    b = {k: v.numpy() for k, v in synthetic_batch(n_transitions=8, n_objects=3, n_points=32, seed=seed, max_objects=3).items()}
    T = b["mask"].shape[0]
    counts = {"t": np.full((T, 3), 32, np.int32), "t1": np.full((T, 3), 32, np.int32)}
    flags = np.zeros(T, np.uint8)
    for row, when, seg in unseen:
        counts[when][row, seg] = 0
        b["points_" + when][row, seg] = 0.0
        flags[row] |= FLAG_UNSEEN_SEGMENT
    pose = lambda p: np.concatenate([p, np.tile([1, 0, 0, 0], (T, 3, 1))], -1).astype(np.float32)
    arrays = {
        "scene_index": np.zeros(T, np.int32), "step": np.zeros(T, np.int16),
        "seg_class": np.full((T, 3), 7, np.int8), "skill": b["skill"].astype(np.int8),
        "target": b["target"].astype(np.int16), "params": b["params"],
        "obs_t_points": b["points_t"], "obs_t1_points": b["points_t1"],
        "state_t_pose": pose(b["pos_t"]), "state_t1_pose": pose(b["pos_t1"]),
        "rel_t_unary": b["unary_t"].astype(np.uint8), "rel_t1_unary": b["unary_t1"].astype(np.uint8),
        "rel_t_binary": b["binary_t"].astype(np.uint8), "rel_t1_binary": b["binary_t1"].astype(np.uint8),
        "flags": flags, "obs_t_counts": counts["t"], "obs_t1_counts": counts["t1"],
        "scenes_json": np.frombuffer(json.dumps([{"task": "synthetic"}]).encode(), np.uint8),
    }
    folder.mkdir()
    sha = write_shard(folder / shard_name(0), arrays)
    write_manifest(folder, {"format": FORMAT, "shards": [{"file": shard_name(0), "transitions": T,
                                                           "flagged": int((flags > 0).sum()), "sha256": sha}]})
    return folder
