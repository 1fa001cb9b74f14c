"""Stable object ids across camera frames, for segmentation backends that have none of their own.

The task executor compares the relations it observes after a skill with the ones the model
predicted, object by object, and goals name objects: an object must keep its id from frame to
frame. A segmenting camera's instances are stable (``labelled_cloud``); a backend that segments
each frame afresh (``geometric``, and the image backends) numbers its segments in whatever
order it finds them. :class:`SegmentTracker` gives each segment the id of the previous frame's
segment it continues:

1. the same kind (:data:`KINDS`: containers, solids, furniture) and the nearest box centre
   within ``max_jump`` m (greedy, nearest pairs first) among the objects seen in the previous
   frame: objects that stood still or were nudged — or that a skill moved where it said it
   would (:meth:`SegmentTracker.expect_move`: the robot knows what it carries and where to; the
   distance to the nearer of the place it was and the place it was sent to counts, until it is
   seen at the latter, also after frames that missed it on its way: in the gripper, hidden);
2. then, per kind, an unmatched confirmed object of the previous frame (seen in it, not one
   missing for longer) and the one new segment whose box is like its own, when neither has
   another such partner: the object a skill just moved (a pick-and-place carries it farther
   than any jump; the fragments a noisy frame adds beside it are not its size);
3. then what an object holds (an item whose centre lies in its footprint and which stands
   higher: a container's contents, a stack's upper boxes) goes where its holder went: the
   nearest within ``max_jump`` of its place when last seen moved by its holder's displacement
   since — also when the contents were hidden while the container was carried;
4. then rule 1 among the objects missed for a while (one the arm hid comes back): after rules
   2 and 3, so that an object remembered from earlier does not take the id of an item its
   container just carried to where it used to be;
5. anything else is a new object, ``<class>_<n>`` with a number never used before; an object
   not seen for ``forget_after`` frames is forgotten (it may come back under a new id).

An object is confirmed once seen in two frames. A segment seen in one frame only — a fragment
of a frame caught while the arm lifts a container, where the camera sees its walls and the
table under it in pieces — is forgotten as soon as it is missed, and never counts as an
object that moved: twenty such fragments must not stand between a carried bin and its id.

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
    seen: int = 1                     # frames it was seen in (2 or more: confirmed)
    holder: str | None = None         # the object holding it when last seen (rule 3) ...
    holder_at: np.ndarray | None = None   # ... and where that one was then
    size: np.ndarray | None = None    # its box's extents when last seen (rule 2: the same object, moved)
    expected: np.ndarray | None = None    # where a skill is moving it, relative to center (rule 1)

    def distance(self, center: np.ndarray) -> float:
        """From ``center`` to this object: to where it was, or where a skill sent it if nearer."""
        d = float(np.linalg.norm(center - self.center))
        if self.expected is not None:
            d = min(d, float(np.linalg.norm(center - self.center - self.expected)))
        return d


def holders(objects: list[SegmentedObject]) -> list[int | None]:
    """For each object, the index of the object holding it (rule 3): of the objects other than
    furniture with a larger footprint that holds its centre and a box starting no higher (boxes
    reach down to the surface an object stands on: a bin's and its items' both start at the
    table), the largest (a bin, not the item under another inside it); None if none."""
    out: list[int | None] = []
    for i, o in enumerate(objects):
        best, area = None, 0.0
        for j, h in enumerate(objects):
            if j == i or o.box is None or h.box is None or _kind(h.label) == "furniture":
                continue
            yaw = 2.0 * np.arctan2(h.box.orientation[2], h.box.orientation[3])
            c, sn = np.cos(yaw), np.sin(yaw)
            dx, dy = o.box.center[:2] - h.box.center[:2]
            local = np.array([c * dx + sn * dy, -sn * dx + c * dy])
            inside = (np.abs(local) <= 0.5 * h.box.size[:2]).all()
            lower = h.box.center[2] - 0.5 * h.box.size[2] <= o.box.center[2] - 0.5 * o.box.size[2] + 0.01
            larger = h.box.size[0] * h.box.size[1] > o.box.size[0] * o.box.size[1]
            if inside and lower and larger and h.box.size[0] * h.box.size[1] > area:
                best, area = j, float(h.box.size[0] * h.box.size[1])
        out.append(best)
    return out


#: Rule 2's likeness of two boxes: each extent within this fraction of the larger, or 3 cm.
SAME_SIZE = (0.35, 0.03)


def _size_difference(a, b) -> float:
    """The largest extent difference of two boxes in units of :data:`SAME_SIZE`'s tolerance
    (<= 1: alike). Extents are compared sorted: a box turned by 90° is the same box."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    tolerance = np.maximum(SAME_SIZE[0] * np.maximum(a, b), SAME_SIZE[1])
    return float((np.abs(a - b) / tolerance).max())


class SegmentTracker:
    def __init__(self, max_jump: float = 0.1, forget_after: int = 30):
        if max_jump <= 0 or forget_after < 1:
            raise ValueError(f"max_jump must be > 0 and forget_after >= 1, got {max_jump}, {forget_after}")
        self.max_jump, self.forget_after = max_jump, forget_after
        self.tracks: list[_Track] = []
        self._next = 0

    def restarted(self) -> "SegmentTracker":
        """A tracker that remembers no object (the world was replaced) and numbers new ones after
        every id this one gave: an id never names two objects."""
        fresh = SegmentTracker(self.max_jump, self.forget_after)
        fresh._next = self._next
        return fresh

    def expect_move(self, object_id: str, displacement) -> bool:
        """A skill is moving ``object_id`` by ``displacement`` (m, 3): rule 1 looks for it there
        too, from the next frame until it is seen there. False when no tracked object has the id."""
        d = np.asarray(displacement, float).reshape(3)
        if not np.isfinite(d).all():
            raise ValueError(f"displacement {d} is not finite")
        for t in self.tracks:
            if t.id == object_id:
                t.expected = d
                return True
        return False

    def _match(self, ids: list, free: set, pairs) -> None:
        """Nearest pairs (distance, object, track) first, each within max_jump, each once."""
        for dist, i, k in sorted(pairs):
            if dist <= self.max_jump and ids[i] is None and k in free:
                ids[i] = self.tracks[k].id
                free.discard(k)

    def _moved(self, objects: list[SegmentedObject], ids: list, free: set, held: bool) -> None:
        """Rule 2: per kind, a confirmed object of the previous frame that no segment continued
        and the one new segment whose box is like its own (every extent within
        :data:`SAME_SIZE`), when neither has another such partner. A moved bag is still a
        bag-sized box; the fragments a noisy frame adds beside it (a wall's piece, a floor seen
        through a gap) are not, so they no longer hide which segment the moved object is; two
        alike new cuboids where one went stay new (which one it is cannot be told). ``held``:
        the objects that something held in the previous frame (after rule 3: contents go where
        their holder went), else the others."""
        alike: dict[int, list[int]] = {}
        for k in free:
            t = self.tracks[k]
            if t.missed or t.seen < 2 or (t.holder is not None) != held:   # missing for longer: it did not just move
                continue
            alike[k] = [i for i, o in enumerate(objects) if ids[i] is None and _kind(o.label) == _kind(t.label)
                        and (t.size is None or o.box is None or _size_difference(t.size, o.box.size) <= 1.0)]
        partners = [sum(i in c for c in alike.values()) for i in range(len(objects))]
        for k, candidates in alike.items():
            if len(candidates) == 1 and partners[candidates[0]] == 1:
                ids[candidates[0]] = self.tracks[k].id
                free.discard(k)

    def assign(self, objects: list[SegmentedObject]) -> list[SegmentedObject]:
        """``objects`` with the ids they keep across frames (module docstring), in their order."""
        centers = [np.asarray(o.box.center if o.box is not None else o.points.mean(axis=0), float) for o in objects]
        ids: list[str | None] = [None] * len(objects)
        free = set(range(len(self.tracks)))
        same = [[k for k, t in enumerate(self.tracks) if _kind(t.label) == _kind(o.label)] for o in objects]
        def near(missed: bool):       # an object a skill is carrying counts as just seen: it was out of view
            return ((self.tracks[k].distance(centers[i]), i, k) for i in range(len(objects))
                    for k in same[i] if (self.tracks[k].missed > 0 and self.tracks[k].expected is None) == missed)
        self._match(ids, free, near(missed=False))                                                      # rule 1
        self._moved(objects, ids, free, held=False)                                                     # rule 2
        where = {ids[i]: centers[i] for i in range(len(objects)) if ids[i] is not None}
        self._match(ids, free, (                                                                        # rule 3
            (float(np.linalg.norm(centers[i] - t.center - (where[t.holder] - t.holder_at))), i, k)
            for i in range(len(objects)) if ids[i] is None for k in same[i]
            if k in free and (t := self.tracks[k]).seen >= 2 and t.holder in where))
        self._moved(objects, ids, free, held=True)     # rule 2 for an item taken out of what held it
        self._match(ids, free, near(missed=True))                                                       # rule 4
        previous = {t.id: t for k, t in enumerate(self.tracks) if k not in free}
        kept = [replace(t, missed=t.missed + 1) for k, t in enumerate(self.tracks)
                if k in free and t.seen >= 2 and t.missed + 1 < self.forget_after]
        for i, o in enumerate(objects):
            if ids[i] is None:
                ids[i] = instance_object_id(o.label, self._next)
                self._next += 1
        held_by = holders(objects)
        out = []
        for i, o in enumerate(objects):
            before = previous.get(ids[i])
            label = before.label if before is not None else o.label     # the class goes with the id
            h = held_by[i]
            expected = None                # still on its way where it was not seen where it was sent
            if before is not None and before.expected is not None and \
                    np.linalg.norm(centers[i] - before.center) <= np.linalg.norm(centers[i] - before.center - before.expected):
                expected = before.expected + before.center - centers[i]
            kept.append(_Track(ids[i], label, centers[i], seen=(before.seen if before else 0) + 1,
                               holder=None if h is None else ids[h], holder_at=None if h is None else centers[h],
                               size=None if o.box is None else np.asarray(o.box.size, float), expected=expected))
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
