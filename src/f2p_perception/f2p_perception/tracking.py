"""Stable object ids across camera frames, for segmentation backends that have none of their own.

The task executor compares the relations it observes after a skill with the ones the model
predicted, object by object, and goals name objects: an object must keep its id from frame to
frame. A segmenting camera's instances are stable (``labelled_cloud``); a backend that segments
each frame afresh (``geometric``, and the image backends) numbers its segments in whatever
order it finds them. :class:`SegmentTracker` gives each segment the id of the previous frame's
segment it continues:

1. the same kind (:data:`KINDS`: containers, solids, furniture) and the nearest box centre
   within ``max_jump`` m (greedy, nearest pairs first): objects that stood still or were nudged;
2. then, per kind, a single unmatched segment of the previous frame (seen in it, not one
   missing for longer) and a single new one: the object a skill just moved (a pick-and-place carries it farther than any jump); and the
   objects that moved with it (a container's contents): the nearest within ``max_jump`` of
   where the same displacement takes them;
3. anything else is a new object, ``<class>_<n>`` with a number never used before; an object
   not seen for ``forget_after`` frames is forgotten (it may come back under a new id).

An object keeps its class with its id: a bin whose height a frame puts at a bag's is still the
bin (a class read from one partial view flips where two classes' size ranges meet).

:func:`ground` names a scene's objects by a reference that knows them (the simulator's true
boxes): how a client states a task's goal in the ids a perceiving robot reports.

Plain numpy, no ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from f2p_common.interfaces import SegmentedObject, instance_object_id


#: Classes a tracked object may be read as from frame to frame (one shape prior each).
KINDS = {"bin": "container", "bag": "container", "cup": "container", "cuboid": "solid", "table": "furniture",
         "shelf": "furniture", "cabinet": "furniture", "drawer": "drawer"}


def _kind(label: str) -> str:
    return KINDS.get(label, label)


@dataclass
class _Track:
    id: str
    label: str
    center: np.ndarray
    missed: int = 0


class SegmentTracker:
    def __init__(self, max_jump: float = 0.1, forget_after: int = 30):
        if max_jump <= 0 or forget_after < 1:
            raise ValueError(f"max_jump must be > 0 and forget_after >= 1, got {max_jump}, {forget_after}")
        self.max_jump, self.forget_after = max_jump, forget_after
        self.tracks: list[_Track] = []
        self._next = 0

    def assign(self, objects: list[SegmentedObject]) -> list[SegmentedObject]:
        """``objects`` with the ids they keep across frames (module docstring), in their order."""
        centers = [o.box.center if o.box is not None else o.points.mean(axis=0) for o in objects]
        ids: list[str | None] = [None] * len(objects)
        free = set(range(len(self.tracks)))
        pairs = sorted((float(np.linalg.norm(centers[i] - t.center)), i, k) for i, o in enumerate(objects)
                       for k, t in enumerate(self.tracks) if _kind(t.label) == _kind(o.label))
        for dist, i, k in pairs:
            if dist <= self.max_jump and ids[i] is None and k in free:
                ids[i] = self.tracks[k].id
                free.discard(k)
        labels = {}
        moves = []                                             # displacements of the objects that moved
        for kind in sorted({_kind(o.label) for o in objects}):
            new = [i for i, o in enumerate(objects) if ids[i] is None and _kind(o.label) == kind]
            # of the previous frame: an object missing for longer (or from a scene before a reset)
            # did not just move
            gone = [k for k in free if _kind(self.tracks[k].label) == kind and self.tracks[k].missed == 0]
            if len(new) == 1 and len(gone) == 1:               # the one object of its kind that moved
                ids[new[0]] = self.tracks[gone[0]].id
                free.discard(gone[0])
                moves.append(np.asarray(centers[new[0]], float) - self.tracks[gone[0]].center)
        for d in moves:                                        # what moved with it (a container's contents)
            pairs = sorted((float(np.linalg.norm(centers[i] - self.tracks[k].center - d)), i, k)
                           for i, o in enumerate(objects) if ids[i] is None
                           for k in free if _kind(self.tracks[k].label) == _kind(o.label))
            for dist, i, k in pairs:
                if dist <= self.max_jump and ids[i] is None and k in free:
                    ids[i] = self.tracks[k].id
                    free.discard(k)
        for k, t in enumerate(self.tracks):
            if k not in free:
                labels[t.id] = t.label
        kept = []
        for k in sorted(free):
            t = self.tracks[k]
            if t.missed + 1 < self.forget_after:
                kept.append(replace(t, missed=t.missed + 1))
        out = []
        for i, o in enumerate(objects):
            if ids[i] is None:
                ids[i] = instance_object_id(o.label, self._next)
                self._next += 1
            label = labels.get(ids[i], o.label)                # the class goes with the id
            kept.append(_Track(ids[i], label, np.asarray(centers[i], float)))
            out.append(SegmentedObject(ids[i], label, o.points, o.score, o.box, o.colors))
        self.tracks = kept
        return out


def ground(reference: list[tuple[str, str, np.ndarray]], objects: list[SegmentedObject]) -> dict[str, str]:
    """{reference id: segment id}: each reference object (id, class, centre) named by the segment
    of its kind (:data:`KINDS`: a bag the tracker still calls the bin it replaced is that
    container) whose box centre is nearest (nearest pairs first, each segment once). Reference
    objects no segment of their kind is left for are missing from the result."""
    centers = [o.box.center if o.box is not None else o.points.mean(axis=0) for o in objects]
    pairs = sorted((float(np.linalg.norm(np.asarray(c) - centers[j])), i, j) for i, (_rid, label, c) in
                   enumerate(reference) for j, o in enumerate(objects) if _kind(o.label) == _kind(label))
    out, used = {}, set()
    for _d, i, j in pairs:
        rid = reference[i][0]
        if rid not in out and j not in used:
            out[rid] = objects[j].id
            used.add(j)
    return out
