"""What Guardian knows of a scene, and the skill library's effects on it, symbolically.

:class:`SceneFacts` is a scene as boxes: object ids, classes and world axis-aligned boxes
(REP-103: metres, z up), from the perception node's ``SegmentedScene`` on a robot or the
simulator's segments in data generation; its relations are the one relations module's
(paper 000 A.9, box contacts).

:func:`predict_step` is the skill library's precondition / effect model on boxes (paper 000
A.10 skills, as ``f2p_sim.skills`` executes them), the STRIPS-like abstraction a symbolic
verifier checks plans with:

pick_place(X; dx, dy, dz)  precondition: X is movable and nothing stands on X (its grasp point
    is free). Effect: X and everything inside it move by (dx, dy); X comes to rest on the
    highest surface under its new footprint (the floor if none): inside a receptacle (bin,
    bag, cup, drawer, shelf) whose footprint holds X's, on the receptacle's contents or
    floor; on top of anything else (of surfaces level with each other, the one under its
    centre). X falls when its centre is not over what it rests on, and is put down unstably
    (``fell`` too) when it rests on a surface with its centre nearer that surface's edge than
    :data:`~f2p_common.vocabulary.PLACEMENT_MARGIN` says (a quarter of its own extent and 3 cm):
    it hangs over the edge or bridges the gap to the next table, and tilts (an object put
    into a receptacle needs its footprint held, not this margin).
push(X; direction, distance)  precondition: X is movable. Effect: X moves ``distance`` along
    the heading, and every movable object on the same support in its path is pushed along
    in contact, as a row; X falls to the floor when its centre leaves its support.
open_drawer / close_drawer(X; distance)  X and its contents slide out (-x) / in (+x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from f2p_common.interfaces import SegmentedScene, SkillCall
from f2p_common.vocabulary import (BINARY_RELATIONS, CONTAINER_CLASSES, MOVABLE_CLASSES, PLACEMENT_MARGIN,
                                   check_object_class)
from f2p_relations.relations import VERTICAL_OVERLAP_TOL, Boxes, Relations, compute_relations

#: Classes an object can be put into (its box then ends inside theirs).
RECEPTACLE_CLASSES = CONTAINER_CLASSES | {"shelf"}
#: m of floor assumed inside an empty receptacle (its base is not seen from outside).
RECEPTACLE_FLOOR = 0.01
#: A box whose centre is within this (m) of its support's footprint stays on it.
SUPPORT_MARGIN = 0.005
#: m of box error the verifier forgives in support and containment (perception's boxes are off by
#: about this): ``inside`` and ``above`` are read with the subject's box shrunk by this much on
#: every side (an item whose noisy box pokes out of its cup by a centimetre is still in it, a box
#: whose bottom dips into its table is still on it); every relation is still the one relations
#: module's.
BOX_TOLERANCE = 0.01


@dataclass(frozen=True, eq=False)
class SceneFacts:
    """N objects: ``object_ids``, ``classes`` (the vocabulary's) and AABB corners (N, 3)."""

    object_ids: tuple[str, ...]
    classes: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        ids, classes = tuple(self.object_ids), tuple(self.classes)
        object.__setattr__(self, "object_ids", ids)
        object.__setattr__(self, "classes", classes)
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
            raise ValueError(f"object ids must be distinct non-empty strings, got {list(ids)}")
        if len(classes) != len(ids):
            raise ValueError(f"{len(ids)} object ids but {len(classes)} classes")
        for c in classes:
            check_object_class(c)
        boxes = Boxes(self.lower, self.upper)          # validates shape, finiteness, order
        if len(boxes) != len(ids):
            raise ValueError(f"{len(ids)} object ids but {len(boxes)} boxes")
        object.__setattr__(self, "lower", boxes.lower)
        object.__setattr__(self, "upper", boxes.upper)

    def __len__(self) -> int:
        return len(self.object_ids)

    @property
    def boxes(self) -> Boxes:
        return Boxes(self.lower, self.upper)

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.lower + self.upper)

    def index(self, object_id: str) -> int:
        """The row of ``object_id``; ValueError naming the known ids if there is none."""
        try:
            return self.object_ids.index(object_id)
        except ValueError:
            raise ValueError(f"unknown object {object_id!r}; the scene has {', '.join(self.object_ids)}") from None

    def relations(self) -> Relations:
        """Relations of paper 000 A.9 from the boxes (in_contact from box gaps), ``inside`` and
        ``above`` with each subject's box shrunk by :data:`BOX_TOLERANCE`; computed once (the facts
        are immutable)."""
        rel = self.__dict__.get("_relations")
        if rel is None:
            n = len(self)
            plain = compute_relations(self.boxes, self.classes, names=self.object_ids)
            shrunk = Boxes(np.concatenate([np.minimum(self.lower + BOX_TOLERANCE, self.center), self.lower]),
                           np.concatenate([np.maximum(self.upper - BOX_TOLERANCE, self.center), self.upper]))
            tolerant = compute_relations(shrunk, self.classes * 2).binary[:n, n:]
            binary = plain.binary.copy()
            for k in (rel_index("inside"), rel_index("above")):
                binary[..., k] = tolerant[..., k]
            binary[..., rel_index("below")] = binary[..., rel_index("above")].T
            binary[np.arange(n), np.arange(n)] = False
            rel = Relations(plain.unary, binary, self.object_ids)
            object.__setattr__(self, "_relations", rel)
        return rel

    def moved(self, lower: np.ndarray, upper: np.ndarray) -> "SceneFacts":
        return SceneFacts(self.object_ids, self.classes, lower, upper)

    @classmethod
    def from_scene(cls, scene: SegmentedScene) -> "SceneFacts":
        """From the perception node's segmented scene: each object's oriented box as the
        axis-aligned box around it (its points' bounds when it has no box); ValueError for an
        object with neither."""
        lower, upper = np.zeros((len(scene.objects), 3)), np.zeros((len(scene.objects), 3))
        for k, o in enumerate(scene.objects):
            if o.box is not None:
                lower[k], upper[k] = o.box.bounds()
            elif len(o.points):
                lower[k], upper[k] = np.min(o.points, axis=0), np.max(o.points, axis=0)
            else:
                raise ValueError(f"object {o.id!r} has neither a box nor points")
        return cls(tuple(o.id for o in scene.objects), tuple(o.label for o in scene.objects), lower, upper)

    def to_dict(self) -> dict:
        return {"object_ids": list(self.object_ids), "classes": list(self.classes),
                "lower": np.round(self.lower, 5).tolist(), "upper": np.round(self.upper, 5).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "SceneFacts":
        n = len(d["object_ids"])
        return cls(tuple(d["object_ids"]), tuple(d["classes"]), np.asarray(d["lower"], float).reshape(n, 3),
                   np.asarray(d["upper"], float).reshape(n, 3))


@dataclass
class StepOutcome:
    """The predicted effect of one skill call: ``after`` (None when refused, ``refused`` says
    why), the objects that moved with the target (``riders``, pushed ``row``), what the target
    rests on afterwards (``support``: an object id, "floor", or "" when refused) and whether it
    falls (``fell``: its centre is not over its support, or a put-down box's is too near that
    support's edge to stay: :data:`~f2p_common.vocabulary.PLACEMENT_MARGIN`)."""

    call: SkillCall
    after: SceneFacts | None
    refused: str = ""
    riders: list[str] = field(default_factory=list)
    row: list[str] = field(default_factory=list)
    support: str = ""
    fell: bool = False

    @property
    def ok(self) -> bool:
        return self.after is not None and not self.fell


def contents(facts: SceneFacts, i: int) -> list[int]:
    """Objects inside object ``i`` (transitively: the items in a cup in a bin)."""
    rel = facts.relations()
    k = rel_index("inside")
    out, frontier = [], [i]
    while frontier:
        c = frontier.pop()
        for j in np.nonzero(rel.binary[:, c, k])[0]:
            if int(j) != i and int(j) not in out:
                out.append(int(j))
                frontier.append(int(j))
    return out


def rel_index(predicate: str) -> int:
    return BINARY_RELATIONS.index(predicate)


def _footprint_overlap(lo, hi, lo2, hi2) -> np.ndarray:
    """(M,) whether the xy footprint [lo, hi] overlaps each of M boxes [lo2, hi2]."""
    ov = np.minimum(hi[:2], hi2[:, :2]) - np.maximum(lo[:2], lo2[:, :2])
    return np.all(ov > 0.0, axis=1)


def rest_height(facts: SceneFacts, lo: np.ndarray, hi: np.ndarray, ignore: Sequence[int]) -> tuple[float, int]:
    """(z, support row or -1 = floor) where a box with footprint [lo, hi] comes to rest when let
    down from above: on the highest surface under it, or inside a receptacle holding its footprint."""
    others = np.array([j for j in range(len(facts)) if j not in set(ignore)], dtype=int)
    if others.size == 0:
        return 0.0, -1
    under = others[_footprint_overlap(lo, hi, facts.lower[others], facts.upper[others])]
    best_z, best = 0.0, -1
    inner = set()
    for r in under:
        if facts.classes[r] not in RECEPTACLE_CLASSES:
            continue
        holds = np.all(lo[:2] >= facts.lower[r, :2] - SUPPORT_MARGIN) and np.all(hi[:2] <= facts.upper[r, :2] + SUPPORT_MARGIN)
        if not holds:
            continue
        inside = [j for j in contents(facts, int(r)) if j in set(under.tolist())]
        floor_z = min((facts.lower[j, 2] for j in contents(facts, int(r))), default=facts.lower[r, 2] + RECEPTACLE_FLOOR)
        z = max([floor_z] + [facts.upper[j, 2] for j in inside])
        inner.update(inside)
        inner.add(int(r))
        if z > best_z:
            best_z, best = float(z), int(r)
    surfaces = [int(r) for r in under if int(r) not in inner]
    top = max((float(facts.upper[r, 2]) for r in surfaces), default=-math.inf)
    if top > best_z:
        # surfaces level with the highest (two tables side by side): the one under the centre
        level = [r for r in surfaces if facts.upper[r, 2] >= top - VERTICAL_OVERLAP_TOL]
        c = 0.5 * (lo[:2] + hi[:2])
        best = min(level, key=lambda r: (float(np.linalg.norm(np.maximum(0.0, facts.lower[r, :2] - c)
                                                              + np.maximum(0.0, c - facts.upper[r, :2]))),
                                         -float(facts.upper[r, 2])))
        best_z = float(facts.upper[best, 2])
    return best_z, best


def support_of(facts: SceneFacts, i: int) -> int:
    """What object ``i`` rests on now (row; -1 = the floor): the receptacle it is inside, else
    the highest box under its footprint whose top is not above its bottom."""
    rel = facts.relations()
    hosts = np.nonzero(rel.binary[i, :, rel_index("inside")])[0]
    if hosts.size:       # the innermost host: the one with the smallest box
        return int(min(hosts, key=lambda j: float(np.prod(facts.upper[j] - facts.lower[j]))))
    others = np.array([j for j in range(len(facts)) if j != i], dtype=int)
    if others.size == 0:
        return -1
    under = others[_footprint_overlap(facts.lower[i], facts.upper[i], facts.lower[others], facts.upper[others])]
    under = [int(j) for j in under if facts.upper[j, 2] <= facts.lower[i, 2] + VERTICAL_OVERLAP_TOL]
    return max(under, key=lambda j: float(facts.upper[j, 2])) if under else -1


def supports(facts: SceneFacts) -> list[int]:
    """:func:`support_of` of every object, computed once per facts."""
    sup = facts.__dict__.get("_supports")
    if sup is None:
        sup = [support_of(facts, j) for j in range(len(facts))]
        object.__setattr__(facts, "_supports", sup)
    return sup


def on_top(facts: SceneFacts, i: int) -> list[int]:
    """Objects standing on object ``i`` (transitively), not inside it."""
    out, frontier, sup, inside = [], [i], supports(facts), contents(facts, i)
    while frontier:
        c = frontier.pop()
        for j in range(len(facts)):
            if j != i and j not in out and sup[j] == c and j not in inside:
                out.append(j)
                frontier.append(j)
    return out


def _centre_over(facts: SceneFacts, lo, hi, support: int, inset=-SUPPORT_MARGIN) -> bool:
    """Whether the centre of footprint [lo, hi] lies over ``support``'s, ``inset`` (m, per axis or
    one for both) inside its edge — at most a quarter of the support's extent; negative: that
    much beyond it."""
    if support < 0:
        return True
    c = 0.5 * (lo[:2] + hi[:2])
    margin = np.minimum(inset, 0.25 * (facts.upper[support, :2] - facts.lower[support, :2]))
    return bool(np.all(c >= facts.lower[support, :2] + margin) and np.all(c <= facts.upper[support, :2] - margin))


def predict_step(facts: SceneFacts, call: SkillCall) -> StepOutcome:
    """The effect of ``call`` on ``facts`` (module docstring); ValueError for an unknown target."""
    t = facts.index(call.target_ids[0])
    cls = facts.classes[t]
    lower, upper = facts.lower.copy(), facts.upper.copy()
    if call.skill in ("pick_place", "push") and cls not in MOVABLE_CLASSES:
        return StepOutcome(call, None, refused=f"{facts.object_ids[t]} is a {cls}, not movable")
    if call.skill in ("open_drawer", "close_drawer") and cls != "drawer":
        return StepOutcome(call, None, refused=f"{facts.object_ids[t]} is a {cls}, not a drawer")
    inside = contents(facts, t)
    if call.skill == "pick_place":
        covering = on_top(facts, t)
        if covering:
            names = ", ".join(facts.object_ids[j] for j in covering)
            return StepOutcome(call, None, refused=f"{facts.object_ids[t]} cannot be grasped: {names} stands on it")
        dx, dy, _ = call.parameters
        lo, hi = lower[t] + [dx, dy, 0.0], upper[t] + [dx, dy, 0.0]
        z, support = rest_height(facts, lo, hi, ignore=[t, *inside])
        shift = np.array([dx, dy, z - lower[t, 2]])
        for j in [t, *inside]:
            lower[j] += shift
            upper[j] += shift
        into = support >= 0 and facts.classes[support] in RECEPTACLE_CLASSES and \
            np.all(lo[:2] >= facts.lower[support, :2] - SUPPORT_MARGIN) and \
            np.all(hi[:2] <= facts.upper[support, :2] + SUPPORT_MARGIN)
        stable = PLACEMENT_MARGIN + 0.25 * (hi[:2] - lo[:2])          # three quarters of it on the surface
        fell = not _centre_over(facts, lo, hi, support, -SUPPORT_MARGIN if into else stable)
        return StepOutcome(call, facts.moved(lower, upper), riders=[facts.object_ids[j] for j in inside],
                           support=facts.object_ids[support] if support >= 0 else "floor", fell=fell)
    if call.skill == "push":
        direction, distance = call.parameters
        u = np.array([math.cos(direction), math.sin(direction)])
        support = supports(facts)[t]
        row = _push_row(facts, t, u, distance, support, exclude=inside)
        for j, travel in row:
            for k in [j, *contents(facts, j), *on_top(facts, j)]:
                lower[k, :2] += travel * u
                upper[k, :2] += travel * u
        fell = not _centre_over(facts, lower[t], upper[t], support)
        if fell:                              # off its support's edge: it drops to what is below
            z, _ = rest_height(facts.moved(lower, upper), lower[t], upper[t], ignore=[t, support, *inside])
            lower[t, 2], upper[t, 2] = z, z + (facts.upper[t, 2] - facts.lower[t, 2])
        return StepOutcome(call, facts.moved(lower, upper), riders=[facts.object_ids[j] for j in inside],
                           row=[facts.object_ids[j] for j, _ in row[1:]],
                           support=facts.object_ids[support] if support >= 0 else "floor", fell=fell)
    (distance,) = call.parameters
    sign = -1.0 if call.skill == "open_drawer" else 1.0
    for j in [t, *inside]:
        lower[j, 0] += sign * distance
        upper[j, 0] += sign * distance
    return StepOutcome(call, facts.moved(lower, upper), riders=[facts.object_ids[j] for j in inside])


def _push_row(facts: SceneFacts, t: int, u: np.ndarray, distance: float, support: int,
              exclude: Sequence[int]) -> list[tuple[int, float]]:
    """[(row, travel)] for the pushed target and every object it drives along ``u`` in contact:
    movable objects resting on the same support, overlapping the target's sides across ``u``."""
    perp = np.array([-u[1], u[0]])

    def span(j, axis):
        c = 0.5 * (facts.lower[j, :2] + facts.upper[j, :2])
        h = 0.5 * (facts.upper[j, :2] - facts.lower[j, :2])
        r = abs(axis[0]) * h[0] + abs(axis[1]) * h[1]
        m = float(c @ axis)
        return m - r, m + r

    t_lat = span(t, perp)
    candidates = []
    for j in range(len(facts)):
        if j == t or j in exclude or facts.classes[j] not in MOVABLE_CLASSES:
            continue
        lat = span(j, perp)
        if supports(facts)[j] != support or lat[1] <= t_lat[0] or lat[0] >= t_lat[1]:
            continue
        lo_u, hi_u = span(j, u)
        if lo_u >= span(t, u)[1] - 1e-3:
            candidates.append((lo_u, hi_u, j))
    out = [(t, float(distance))]
    front = span(t, u)[1] + distance
    for lo_u, hi_u, j in sorted(candidates):
        if lo_u >= front:
            break
        travel = front - lo_u
        out.append((j, float(travel)))
        front = hi_u + travel
    return out
