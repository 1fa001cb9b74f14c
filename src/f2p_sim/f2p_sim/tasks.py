"""The three tasks of paper 000 (§6, A.2), randomised by seed, with relation-conjunction goals.

A goal G = g_1 ∧ ... ∧ g_M (paper 000 §3) is a list of :class:`Literal` over object names;
:meth:`Task.success` evaluates it on the simulator's ground-truth relations.

``transport``  Multi-object Transport: a container (bin or bag) on table ``table_a`` holds
               n-1 items; goal: every item inside the container and the container on
               ``table_b`` (one pick-and-place of the container, if the model knows that
               contents move with it).
``organize``   Hierarchical Tabletop Organization: k cups (1, 2, 3 for n = 3, 5, 7) on
               ``table_a`` hold n-k small items; goal: every item still inside its cup, every
               cup on ``table_b``, and the cups ordered left to right as numbered.
``packing``    Constrained Packing: n-1 items stand spread along a shelf so that no gap
               fits the last item, which waits on ``table_a``; goal: the shelf items pushed
               into a row of contacts and the last item inside the shelf compartment.

n counts every movable object (containers included): 3, 5 or 7.

The furniture comes from the world config's layout (``f2p_sim.config``): ``paper`` (two
0.5 m square tables 0.45 m high, as every shipped model and result was made; its random
draws are unchanged, so a (kind, n, seed) gives the scene it always gave) or ``real_scale``
(tables of real furniture, 0.5-2 m, 0.4-0.9 m high, the objects within the robot's reach
near the tables' inner edges; object sizes from the layout's class ranges).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from f2p_common.vocabulary import TASK_SKILLS
from f2p_relations.relations import Relations
from f2p_sim.backend import SimBackend
from f2p_sim.scene import ObjectSpec, SceneError, SceneSpec, inner_footprint, shelf_board_height

#: The task kinds, in the order of the vocabulary's skill libraries (part of every task's seed).
TASK_KINDS: tuple[str, ...] = tuple(TASK_SKILLS)
OBJECT_COUNTS: tuple[int, ...] = (3, 5, 7)
#: The paper layout's table height (m).
TABLE_HEIGHT = 0.45


@dataclass(frozen=True)
class Literal:
    """A goal literal ``predicate(subject[, object])`` over object names; ``value`` False negates."""

    predicate: str
    subject: str
    object: str | None = None
    value: bool = True

    def __str__(self) -> str:
        args = self.subject if self.object is None else f"{self.subject}, {self.object}"
        return f"{'' if self.value else 'not '}{self.predicate}({args})"


@dataclass
class Task:
    kind: str
    n_objects: int
    seed: int
    scene: SceneSpec
    goal: list[Literal] = field(default_factory=list)
    #: The tables the scene was made with (None for a scene from elsewhere).
    furniture: "Furniture | None" = None

    def unmet(self, relations: Relations, segment_names: list[str]) -> list[Literal]:
        """Goal literals that do not hold in ``relations``."""
        idx = {n: i for i, n in enumerate(segment_names)}
        out = []
        for lit in self.goal:
            obj = None if lit.object is None else idx[lit.object]
            if relations.holds(lit.predicate, idx[lit.subject], obj) != lit.value:
                out.append(lit)
        return out

    def success(self, backend: SimBackend) -> bool:
        """True when every goal literal holds in the backend's current state."""
        return not self.unmet(backend.relations(), [s.name for s in backend.segments])


def _uniform_size(rng: np.random.Generator, cfg: dict, cls: str, scale: float = 1.0) -> tuple[float, float, float]:
    lo, hi = (np.asarray(v, dtype=np.float64) for v in cfg["classes"][cls]["size_range"])
    return tuple(float(v) for v in np.round(rng.uniform(lo, hi) * scale, 4))


def _mass(rng, cfg, cls):
    mr = cfg["classes"][cls].get("mass_range")
    return None if mr is None else float(np.round(rng.uniform(*mr), 4))


@dataclass(frozen=True)
class Furniture:
    """The two tables of a task scene and where the task's objects go: ``spot`` (x, y) on
    table_a around which they stand, and ``shelf_at`` (x of its centre, y of its -y end)
    for the packing shelf, beside table_a where table_b would be."""

    table_a: ObjectSpec
    table_b: ObjectSpec
    spot: tuple[float, float]
    shelf_at: tuple[float, float]

    @property
    def top_a(self) -> float:
        return self.table_a.size[2]

    def carry_shift(self) -> tuple[float, float, float]:
        """(dx, dy, dz) that carries what stands at ``spot`` on table_a to the same place on
        table_b: as far from its near edge and from its inner edge (mirrored across the gap),
        released at table_b's height. The tables' centre offset in the paper layout."""
        a, b = self.table_a, self.table_b
        near_a, near_b = a.pos[0] - a.size[0] / 2, b.pos[0] - b.size[0] / 2
        inner_a, inner_b = a.pos[1] + a.size[1] / 2, b.pos[1] - b.size[1] / 2
        dest = (near_b + (self.spot[0] - near_a), inner_b + (inner_a - self.spot[1]))
        return dest[0] - self.spot[0], dest[1] - self.spot[1], b.size[2] - a.size[2]


def _table(name: str, depth: float, width: float, height: float, x: float, y: float) -> ObjectSpec:
    depth, width, height, x, y = (float(v) for v in (depth, width, height, x, y))
    return ObjectSpec(name, "table", (depth, width, height), (x, y, height / 2))


def _paper_furniture(rng, cfg) -> Furniture:
    jitter = rng.uniform(-0.03, 0.03, 2)
    ta = _table("table_a", 0.5, 0.5, TABLE_HEIGHT, 0.55 + jitter[0], -0.32)
    tb = _table("table_b", 0.5, 0.5, TABLE_HEIGHT, 0.55 + jitter[1], 0.34)
    return Furniture(ta, tb, spot=(ta.pos[0], ta.pos[1]), shelf_at=(0.6, 0.2))


def _real_scale_furniture(rng, cfg) -> Furniture:
    f = cfg["furniture"]
    h_lo, h_hi = f["table_height"]
    step = float(f["height_step"])
    tables, spot = [], None
    gap = rng.uniform(*f["gap"])
    h_a = rng.uniform(h_lo, h_hi)
    for name, side, h in (("table_a", -1.0, h_a), ("table_b", 1.0, None)):
        depth, width = rng.uniform(*f["table_depth"]), rng.uniform(*f["table_width"])
        h = float(np.clip(h_a + rng.uniform(-step, step), h_lo, h_hi)) if h is None else h
        near = rng.uniform(*f["near_edge_x"])
        inner = side * gap / 2                                # the table's edge facing the other
        tables.append(_table(name, *np.round([depth, width, h, near + depth / 2, inner + side * width / 2], 4)))
        if spot is None:
            reach = rng.uniform(*f["reach"], 2)
            # Within reach: the spot is at most `reach` from the near edge and the inner edge,
            # and never closer to an edge than 0.15 m (a container must stand on the table).
            x = near + float(np.clip(reach[0], 0.15, depth - 0.15))
            y = inner + side * float(np.clip(reach[1], 0.15, width - 0.15))
            spot = (float(np.round(x, 4)), float(np.round(y, 4)))
    ta, tb = tables
    # The shelf (at most 0.4 m deep) stands with its centre 0.2-0.3 m behind table_b's near edge.
    shelf_at = (float(tb.pos[0] - tb.size[0] / 2 + rng.uniform(0.2, 0.3)), float(gap / 2 + rng.uniform(0.02, 0.1)))
    return Furniture(ta, tb, spot=spot, shelf_at=shelf_at)


_FURNITURE = {"paper": _paper_furniture, "real_scale": _real_scale_furniture}


def furniture(rng, cfg) -> Furniture:
    """The tables of a task scene in the config's layout (``paper`` if it names none)."""
    return _FURNITURE[cfg.get("layout", "paper")](rng, cfg)


def _grid_cells(n: int, lo_xy: np.ndarray, hi_xy: np.ndarray) -> tuple[int, np.ndarray]:
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    return cols, (hi_xy - lo_xy) / np.array([rows, cols])


def _items_inside(container: ObjectSpec, names: list[str], cfg, rng, scale: float, margin: float = 0.006) -> list[ObjectSpec]:
    """Cuboids standing in a jittered grid on the container's floor, sized to fit their cells."""
    lo, hi = inner_footprint(container, cfg)
    wall = float(cfg["classes"][container.cls]["wall_thickness"])
    floor = container.pos[2] - container.size[2] / 2 + wall
    max_h = container.size[2] - wall - 0.005
    cols, cell = _grid_cells(len(names), lo, hi)
    out = []
    for k, name in enumerate(names):
        s = np.array(_uniform_size(rng, cfg, "cuboid", scale))
        s[:2] = np.minimum(s[:2], cell - 2 * margin)
        # At least 60% of the wall height: an item hidden below the rim is invisible to a
        # camera looking down at ~45 degrees, and unseen segments make unusable data.
        s[2] = rng.uniform(0.6, 1.0) * max_h
        if np.any(s < 0.015):
            raise SceneError(f"items do not fit {container.name}")
        r, c = divmod(k, cols)
        slack = np.maximum((cell - s[:2]) / 2 - margin, 0.0)
        center = lo + cell * (np.array([r, c]) + 0.5) + rng.uniform(-slack, slack)
        out.append(ObjectSpec(name, "cuboid", tuple(float(v) for v in np.round(s, 4)),
                              (float(center[0]), float(center[1]), floor + float(np.round(s[2], 4)) / 2 + 0.001),
                              mass=_mass(rng, cfg, "cuboid")))
    return out


def make_transport(n: int, rng, cfg) -> tuple[SceneSpec, list[Literal], Furniture]:
    fu = furniture(rng, cfg)
    ta, tb = fu.table_a, fu.table_b
    cls = "bin" if rng.random() < 0.6 else "bag"
    size = _uniform_size(rng, cfg, cls)
    pos = (fu.spot[0] + rng.uniform(-0.08, 0.08), fu.spot[1] + rng.uniform(-0.05, 0.05), fu.top_a + size[2] / 2)
    box = ObjectSpec("container", cls, size, pos)
    items = _items_inside(box, [f"item_{i}" for i in range(n - 1)], cfg, rng, scale=0.85 if n > 5 else 1.0)
    goal = [Literal("inside", it.name, "container") for it in items] + [Literal("above", "container", "table_b")]
    return SceneSpec([ta, tb, box, *items]), goal, fu


def make_organize(n: int, rng, cfg) -> tuple[SceneSpec, list[Literal], Furniture]:
    fu = furniture(rng, cfg)
    ta, tb = fu.table_a, fu.table_b
    k = {3: 1, 5: 2, 7: 3}[n]
    cups, items, goal = [], [], []
    ys = np.linspace(-0.15, 0.15, k) if k > 1 else np.array([0.0])
    xs = rng.permutation(np.linspace(-0.1, 0.1, k)) if k > 1 else np.array([0.0])
    for c in range(k):
        size = _uniform_size(rng, cfg, "cup")
        cups.append(ObjectSpec(f"cup_{c}", "cup", size, (fu.spot[0] + xs[c] + rng.uniform(-0.02, 0.02),
                                                         fu.spot[1] + ys[c], fu.top_a + size[2] / 2)))
    per_cup = np.array_split(np.arange(n - k), k)
    for c, idx in enumerate(per_cup):
        names = [f"item_{i}" for i in idx]
        # Two items side by side must fit a 9-11 cm cup: use the small end of the cuboid range.
        inside = _items_inside(cups[c], names, cfg, rng, scale=0.7)
        items += inside
        goal += [Literal("inside", it.name, cups[c].name) for it in inside]
    goal += [Literal("above", c.name, "table_b") for c in cups]
    goal += [Literal("left", cups[c + 1].name, cups[c].name) for c in range(k - 1)]
    return SceneSpec([ta, tb, *cups, *items]), goal, fu


def make_packing(n: int, rng, cfg) -> tuple[SceneSpec, list[Literal], Furniture]:
    fu = furniture(rng, cfg)
    ta = fu.table_a
    new_size = np.array(_uniform_size(rng, cfg, "cuboid"))
    widths = [np.array(_uniform_size(rng, cfg, "cuboid")) for _ in range(n - 1)]
    for s in (new_size, *widths):
        s[2] = min(s[2], 0.06)
    # Free length = new item + slack < 2 * new item, spread over n gaps (ends included):
    # no single gap fits the new item, so items must be pushed together first.
    free = new_size[1] + rng.uniform(0.02, 0.035)
    gaps = rng.dirichlet(np.full(n, 5.0)) * free
    if gaps.max() >= new_size[1] - 0.005:
        gaps = np.full(n, free / n)
    inner = free + sum(s[1] for s in widths)
    shelf_size = list(_uniform_size(rng, cfg, "shelf"))
    shelf_size[1] = float(np.round(inner, 4))
    # The board within pick_place's dz box of table_a's top (the paper's shelves always are).
    wall = float(cfg["classes"]["shelf"]["wall_height"])
    shelf_size[2] = float(np.clip(shelf_size[2], fu.top_a - 0.15 + wall, fu.top_a + 0.5 + wall))
    shelf = ObjectSpec("shelf", "shelf", tuple(shelf_size),
                       (fu.shelf_at[0], fu.shelf_at[1] + shelf_size[1] / 2, shelf_size[2] / 2))
    board = shelf_board_height(shelf, cfg)
    lo, hi = inner_footprint(shelf, cfg)
    items, y = [], lo[1]
    for i, s in enumerate(widths):
        y += gaps[i]
        x = 0.5 * (lo[0] + hi[0]) + rng.uniform(-0.03, 0.03)
        items.append(ObjectSpec(f"item_{i}", "cuboid", tuple(float(v) for v in s),
                                (float(x), float(y + s[1] / 2), board + s[2] / 2 + 0.001), mass=_mass(rng, cfg, "cuboid")))
        y += s[1]
    new = ObjectSpec("new_item", "cuboid", tuple(float(v) for v in new_size),
                     (fu.spot[0] + rng.uniform(-0.1, 0.1), fu.spot[1] + rng.uniform(-0.1, 0.1), fu.top_a + new_size[2] / 2),
                     mass=_mass(rng, cfg, "cuboid"))
    goal = [Literal("in_contact", items[i].name, items[i + 1].name) for i in range(len(items) - 1)]
    goal += [Literal("inside", "new_item", "shelf")]
    return SceneSpec([ta, shelf, *items, new]), goal, fu


_MAKERS = {"transport": make_transport, "organize": make_organize, "packing": make_packing}


def make_task(kind: str, n_objects: int, seed: int, cfg: dict) -> Task:
    """A randomised task instance; the same (kind, n_objects, seed) always gives the same task."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown task {kind!r}; known: {', '.join(TASK_KINDS)}")
    if n_objects not in OBJECT_COUNTS:
        raise ValueError(f"n_objects must be one of {OBJECT_COUNTS}, got {n_objects}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), TASK_KINDS.index(kind), n_objects]))
    scene, goal, fu = _MAKERS[kind](n_objects, rng, cfg)
    scene.validate(cfg, movable_range=(3, 7))
    if scene.movable_count() != n_objects:
        raise AssertionError(f"{kind}: built {scene.movable_count()} movable objects, wanted {n_objects}")
    return Task(kind=kind, n_objects=n_objects, seed=int(seed), scene=scene, goal=goal, furniture=fu)
