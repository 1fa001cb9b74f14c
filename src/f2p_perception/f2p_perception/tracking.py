"""Stable object ids across camera frames, for segmentation backends that have none of their own.

The task executor compares the relations it observes after a skill with the ones the model
predicted, object by object, and goals name objects: an object must keep its id from frame to
frame. A segmenting camera's instances are stable (``labelled_cloud``); a backend that segments
each frame afresh (``geometric``, and the image backends) numbers its segments in whatever
order it finds them. :class:`SegmentTracker` gives each segment the id of the previous frame's
segment it continues:

1. the same class and the nearest box centre within ``max_jump`` m (greedy, nearest pairs
   first): objects that stood still or were nudged;
2. then, per class, a single unmatched segment of the previous frame and a single new one:
   the object a skill just moved (a pick-and-place carries it farther than any jump);
3. anything else is a new object, ``<class>_<n>`` with a number never used before; an object
   not seen for ``forget_after`` frames is forgotten (it may come back under a new id).

Plain numpy, no ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from f2p_common.interfaces import SegmentedObject, instance_object_id


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
                       for k, t in enumerate(self.tracks) if t.label == o.label)
        for dist, i, k in pairs:
            if dist <= self.max_jump and ids[i] is None and k in free:
                ids[i] = self.tracks[k].id
                free.discard(k)
        for label in {o.label for o in objects}:
            new = [i for i, o in enumerate(objects) if ids[i] is None and o.label == label]
            gone = [k for k in free if self.tracks[k].label == label]
            if len(new) == 1 and len(gone) == 1:               # the one object of its class that moved
                ids[new[0]] = self.tracks[gone[0]].id
                free.discard(gone[0])
        kept = []
        for k in sorted(free):
            t = self.tracks[k]
            if t.missed + 1 < self.forget_after:
                kept.append(replace(t, missed=t.missed + 1))
        for i, o in enumerate(objects):
            if ids[i] is None:
                ids[i] = instance_object_id(o.label, self._next)
                self._next += 1
            kept.append(_Track(ids[i], o.label, np.asarray(centers[i], float)))
        self.tracks = kept
        return [SegmentedObject(ids[i], o.label, o.points, o.score, o.box, o.colors) for i, o in enumerate(objects)]
