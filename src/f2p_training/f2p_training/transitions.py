"""Simulated transitions as padded training arrays (paper 000 §3: D = {(O_t, φ_t, a_t, R_t, R_t+1)}).

:func:`load_transitions` reads dataset folders (``f2p_common.dataset``) into arrays padded to
the model's ``max_objects`` with a mask, :func:`relabel_objects` permutes object slots (the
fine-tuning augmentation), :func:`to_batch` cuts a torch batch. Used by training, evaluation
and the learner; the simulator is never imported.
"""
from __future__ import annotations

import numpy as np
import torch

from f2p_common.dataset import DEFAULT_SKIP_FLAGS, FLAG_UNSEEN_SEGMENT, SimDataset

KEYS = ("points_t", "points_t1", "mask", "seen_t1", "skill", "target", "params", "unary_t", "unary_t1",
        "binary_t", "binary_t1", "pos_t", "pos_t1")
#: Keys whose axes 1 (and 2 for binary relations) index objects.
OBJECT_AXES = {"points_t": 1, "points_t1": 1, "mask": 1, "seen_t1": 1, "unary_t": 1, "unary_t1": 1,
               "binary_t": 2, "binary_t1": 2, "pos_t": 1, "pos_t1": 1}


def load_transitions(folders, n_points: int, max_objects: int, seed: int,
                     skip_flags: int = DEFAULT_SKIP_FLAGS, keep_unseen_after: bool = False) -> dict[str, np.ndarray]:
    """Stack every usable transition of ``folders`` into padded arrays (see
    ``f2p_skill_effect.model.compute_losses``), ``n_points`` points resampled per object (seeded).

    ``keep_unseen_after``: also keep transitions flagged for an unseen segment when every segment
    has points in O_t and only O_t+1 lacks some (an object fell out of the camera's view, e.g. a
    loaded cup dropped past a table's far edge, its items hidden behind the table). Their labels
    R_t+1 and poses come from the simulator, so detection, prediction and pos train on them; the
    regularisation term needs Enc(O_t+1) and skips the unseen segments (``seen_t1`` False; their
    O_t+1 points are a copy of their O_t points, only so that encoding stays finite).

    A dataset of perceived observations (``DatagenParams.perception``, ``f2p_datasets.perceived``)
    is read as the robot's scene: an object its perception gave no segment of its own in O_t (read
    with the container holding it, hidden) is not in that scene, so it is left out of the
    transition with its relations; a transition whose skill target went unperceived is skipped."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in KEYS}
    for folder in folders:
        dataset = SimDataset(folder)
        perceived = dataset.manifest.get("params", {}).get("perception", "simulator") != "simulator"
        flags = skip_flags & ~FLAG_UNSEEN_SEGMENT if keep_unseen_after or perceived else skip_flags
        for tr in dataset.transitions(flags):
            if perceived:
                tr = robot_scene(tr)
                if tr is None:
                    continue
                if not keep_unseen_after and not (tr["obs_t1_counts"] > 0).all():
                    continue
            n = tr["seg_class"].shape[0]
            if n > max_objects:
                raise ValueError(f"{folder}: a scene has {n} segments > max_objects={max_objects}")
            # (hand-written datasets may carry no counts: every segment is seen then)
            seen_t1 = np.asarray(tr.get("obs_t1_counts", np.ones(n))) > 0
            seen_t = np.asarray(tr.get("obs_t_counts", np.ones(n))) > 0
            if keep_unseen_after and (not seen_t.all() or not seen_t1.any()):
                continue   # a segment unseen in O_t cannot be encoded: the transition is not usable
            k = tr["obs_t_points"].shape[1]
            for key, src in (("points_t", "obs_t_points"), ("points_t1", "obs_t1_points")):
                pts = np.zeros((max_objects, n_points, 3), np.float32)
                for i in range(n):
                    pts[i] = tr[src][i][rng.choice(k, n_points, replace=k < n_points)]
                if key == "points_t1":
                    pts[:n][~seen_t1] = rows["points_t"][-1][:n][~seen_t1]
                rows[key].append(pts)
            mask = np.zeros(max_objects, bool)
            mask[:n] = True
            rows["mask"].append(mask)
            seen = np.zeros(max_objects, bool)
            seen[:n] = seen_t1
            rows["seen_t1"].append(seen)
            rows["skill"].append(int(tr["skill"]))
            rows["target"].append(int(tr["target"]))
            rows["params"].append(np.asarray(tr["params"], np.float32))
            for s, d in (("t", "t"), ("t1", "t1")):
                u = np.zeros((max_objects, 3), np.float32)
                u[:n] = tr[f"rel_{d}_unary"]
                b = np.zeros((max_objects, max_objects, 9), np.float32)
                b[:n, :n] = tr[f"rel_{d}_binary"]
                p = np.zeros((max_objects, 3), np.float32)
                p[:n] = tr[f"state_{d}_pose"][:, :3]
                rows[f"unary_{s}"].append(u)
                rows[f"binary_{s}"].append(b)
                rows[f"pos_{s}"].append(p)
    if not rows["mask"]:
        raise ValueError(f"no usable transitions in {list(map(str, folders))}")
    return {k: np.stack(v) for k, v in rows.items()}


def robot_scene(tr: dict) -> dict | None:
    """A perceived transition (:func:`load_transitions`) without the objects unseen in O_t, its
    target renumbered; None when the target is one of them."""
    seen = np.asarray(tr["obs_t_counts"]) > 0
    if seen.all():
        return tr
    if not seen[int(tr["target"])]:
        return None
    keep = np.flatnonzero(seen)
    out = dict(tr)
    for key, value in tr.items():
        if isinstance(value, np.ndarray) and key.startswith(("obs_", "state_", "rel_", "seg_")) and value.ndim >= 1:
            value = value[keep]
            out[key] = value[:, keep] if key.endswith("_binary") else value
    out["target"] = int(np.searchsorted(keep, int(tr["target"])))
    return out


def relabel_objects(arrays: dict[str, np.ndarray], rows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A copy of ``arrays`` in which each of ``rows`` (bool, (B,)) has its real objects randomly
    permuted among their own slots (segments, their relations and the skill target alike;
    padding stays where it is).

    The segment order a perception stack reports is arbitrary, but Γ sees it through the
    object identities ID_i (A.11.2): twenty D+ transitions around one failure all show the
    same indices (e.g. the cup in slot 3), and fine-tuned on them the model learns the effect
    for those slots only — measured on organize with 5 objects: the lesson of a failure moving
    cup 3 never reached cup 2 (0 of 20 trials). Relabelled, the same transitions teach the
    effect for every slot the scene uses. (Permuting over all ``max_objects`` slots instead
    put objects in slots pre-training never used, and fine-tuning got 5x slower and worse.)"""
    b, n = arrays["mask"].shape
    perm = np.tile(np.arange(n), (b, 1))                    # new slot of old slot k
    for r in np.flatnonzero(rows):
        real = np.flatnonzero(arrays["mask"][r])
        perm[r, real] = rng.permutation(real)
    inv = np.argsort(perm, axis=1)                          # old slot of new slot a
    out = dict(arrays)
    rows_i = np.arange(b)[:, None]
    for k, axes in OBJECT_AXES.items():
        if k not in arrays:
            continue
        if axes == 1:
            out[k] = arrays[k][rows_i, inv]
        else:
            out[k] = arrays[k][rows_i[:, :, None], inv[:, :, None], inv[:, None, :]]
    out["target"] = perm[np.arange(b), arrays["target"]]
    return out


def to_batch(arrays, idx, device, relabel=None, rng=None) -> dict[str, torch.Tensor]:
    """Rows ``idx`` as a torch batch, trimmed to the most objects any of its scenes has (the rest
    is padding); rows with ``relabel[idx]`` set are relabelled (:func:`relabel_objects`)."""
    batch = {k: arrays[k][idx] for k in KEYS if k in arrays}
    if relabel is not None and relabel[idx].any():
        batch = relabel_objects(batch, relabel[idx], rng)
    n = max(1, int(batch["mask"].sum(1).max()))
    out = {}
    for k in batch:
        a = batch[k]
        if OBJECT_AXES.get(k) == 1:
            a = a[:, :n]
        elif OBJECT_AXES.get(k) == 2:
            a = a[:, :n, :n]
        t = torch.from_numpy(np.ascontiguousarray(a))
        out[k] = (t.long() if k in ("skill", "target") else t).to(device)
    return out
