"""The skill-control tasks AFIL is trained and measured on (issue 33; paper 003 Table 1 / 4).

Short horizon, one skill each: ``pick_place`` (a box to a free spot on the same or the other
table; in 30 % of the scenes a bin, bag or cup with items in it carried to the other table), ``push`` (a box 6-15 cm along a heading), ``open_drawer`` (a cabinet's drawer 8-20 cm
out). Long horizon, skills in sequence with no retry: ``transport_2`` (two boxes from
table_a to table_b, as the paper's "place can on the plate and banana on the plate") and
``push_stack`` (push box A aside, then stack box B on A wherever A ended).

Domains (Table 4's out-of-domain study): ``train`` draws the world config's class ranges;
``size`` boxes of 3-3.5 or 7.5-9 cm (trained 4-7 cm), ``mass`` 0.5-1 kg (trained
0.08-0.25), ``friction`` 0.25-0.4 (trained 0.8), ``clutter`` four to six more boxes around
the target. The drawer task has only the train domain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from f2p_sim.scene import ObjectSpec, SceneError, SceneSpec, drawer_layout
from f2p_sim.tasks import TABLE_HEIGHT, _items_inside, _uniform_size

#: Share of the train domain's pick_place scenes whose target is a container (bin, bag, cup)
#: with items in it, carried to the other table as the transport task does.
CONTAINER_SHARE = 0.3
#: Tallest box a push task pushes (m).
PUSH_HEIGHT = 0.05

SHORT_TASKS = ("pick_place", "push", "open_drawer")
LONG_TASKS = ("carry_stack", "push_stack")
TASKS = SHORT_TASKS + LONG_TASKS
DOMAINS = ("train", "size", "mass", "friction", "clutter")
#: Tasks the out-of-domain variants apply to (those whose targets are boxes).
OOD_TASKS = ("pick_place", "push", "carry_stack", "push_stack")

_TABLE_A = (0.55, -0.32)
_TABLE_B = (0.55, 0.34)
_HALF_TABLE = 0.25
_MARGIN = 0.07


@dataclass(frozen=True)
class SkillStep:
    """One skill of a task on the object named ``target``: with ``params``, or for a
    pick-and-place ``onto`` another object (the parameters that stack it there are worked out
    when the step starts, from where that object is then)."""

    skill: str
    target: str
    params: tuple[float, ...] | None = None
    onto: str | None = None


@dataclass(frozen=True)
class SkillTask:
    name: str
    domain: str
    seed: int
    scene: SceneSpec
    steps: tuple[SkillStep, ...]


def _table(name, xy) -> ObjectSpec:
    return ObjectSpec(name, "table", (0.5, 0.5, TABLE_HEIGHT), (xy[0], xy[1], TABLE_HEIGHT / 2))


def _box_size(rng, cfg, domain) -> tuple[float, float, float]:
    lo, hi = (np.asarray(v, dtype=np.float64) for v in cfg["classes"]["cuboid"]["size_range"])
    size = rng.uniform(lo, hi)
    if domain == "size":
        side = rng.uniform(0.03, 0.035) if rng.random() < 0.5 else rng.uniform(0.075, 0.09)
        size[:2] = side * rng.uniform(0.9, 1.0, 2)
        size[2] = float(np.clip(size[2], 0.04, 0.08))
    return tuple(float(v) for v in np.round(size, 4))


def _box(name, xy, rng, cfg, domain, max_height: float | None = None) -> ObjectSpec:
    size = _box_size(rng, cfg, domain)
    if max_height is not None and domain != "size":
        size = (size[0], size[1], min(size[2], max_height))
    mr = cfg["classes"]["cuboid"]["mass_range"]
    mass = float(rng.uniform(0.5, 1.0) if domain == "mass" else rng.uniform(*mr))
    friction = float(rng.uniform(0.25, 0.4)) if domain == "friction" else None
    return ObjectSpec(name, "cuboid", size, (float(xy[0]), float(xy[1]), TABLE_HEIGHT + size[2] / 2),
                      mass=round(mass, 4), friction=friction)


def _spot(rng, table, taken, clearance=0.12, reach_from=None) -> np.ndarray:
    """A free spot on ``table``; with ``reach_from``, within pick_place's (dx, dy) box of it."""
    for _ in range(200):
        p = np.asarray(table) + rng.uniform(-_HALF_TABLE + _MARGIN, _HALF_TABLE - _MARGIN, 2)
        if reach_from is not None and np.any(np.abs(p - np.asarray(reach_from)) > 0.78):
            continue
        if all(np.linalg.norm(p - q) >= clearance for q in taken):
            return p
    raise SceneError("no free spot on the table")


def _clutter(rng, cfg, around, taken, names) -> list[ObjectSpec]:
    out = []
    for i in range(int(rng.integers(4, 7))):
        for _ in range(100):
            a, r = rng.uniform(-np.pi, np.pi), rng.uniform(0.08, 0.16)
            p = np.asarray(around) + r * np.array([np.cos(a), np.sin(a)])
            inside = np.all(np.abs(p - np.asarray(_TABLE_A)) <= _HALF_TABLE - 0.04)
            if inside and all(np.linalg.norm(p - q) >= 0.075 for q in taken):
                taken.append(p)
                out.append(_box(f"clutter_{i}", p, rng, cfg, "train"))
                break
    del names
    return out


def _grasp_offset(target: ObjectSpec, spot_xy) -> tuple[float, float, float]:
    return (round(float(spot_xy[0] - target.pos[0]), 4), round(float(spot_xy[1] - target.pos[1]), 4), 0.0)


def _make(name: str, domain: str, rng, cfg) -> tuple[SceneSpec, tuple[SkillStep, ...]]:
    ta, tb = _table("table_a", _TABLE_A), _table("table_b", _TABLE_B)
    if name == "open_drawer":
        lo, hi = (np.asarray(v) for v in cfg["classes"]["cabinet"]["size_range"])
        size = tuple(float(v) for v in np.round(rng.uniform(lo, hi), 4))
        cab = ObjectSpec("cabinet", "cabinet", size, (0.62 + rng.uniform(-0.05, 0.05), rng.uniform(-0.15, 0.15), size[2] / 2),
                         yaw=float(rng.uniform(-0.25, 0.25)))
        max_open = drawer_layout(cab, cfg)[2]
        dist = round(float(rng.uniform(0.08, min(0.2, max_open - 0.03))), 4)
        return SceneSpec([cab]), (SkillStep("open_drawer", "cabinet_drawer", (dist,)),)
    taken: list[np.ndarray] = []
    a_xy = _spot(rng, _TABLE_A, taken)
    taken.append(a_xy)
    # A pushed box stands no taller than PUSH_HEIGHT (as packing's do): the pad pushes from 5 mm
    # above the support, and a taller box tips over however well it is pushed (the size domain
    # keeps the full height range: toppling is part of its shift).
    objs = [ta, tb, _box("box_a", a_xy, rng, cfg, domain, PUSH_HEIGHT if name in ("push", "push_stack") else None)]
    n_extra = {"carry_stack": 2, "push_stack": 1}.get(name, int(rng.integers(0, 3)))
    for i in range(n_extra):
        p = _spot(rng, _TABLE_A, taken)
        taken.append(p)
        objs.append(_box("box_b" if i == 0 else f"box_{i}", p, rng, cfg, domain))
    if domain == "clutter":
        objs += _clutter(rng, cfg, a_xy, taken, [o.name for o in objs])
    box_a = objs[2]
    if name == "pick_place" and domain == "train" and rng.random() < CONTAINER_SHARE:
        # A container with items riding in it, carried from table_a to table_b (the transport
        # task's step, with its rim grasp).
        cls = ("bin", "bag", "cup")[int(rng.integers(3))]
        size = _uniform_size(rng, cfg, cls)
        jitter = rng.uniform(-0.04, 0.04, 2)
        pos = (_TABLE_A[0] + jitter[0], _TABLE_A[1] + jitter[1], TABLE_HEIGHT + size[2] / 2)
        box = ObjectSpec("box_a", cls, size, pos)
        n_items = int(rng.integers(1, 3 if cls != "cup" else 2))
        items = _items_inside(box, [f"item_{i}" for i in range(n_items)], cfg, rng, scale=0.7 if cls == "cup" else 1.0)
        dest = np.asarray(pos[:2]) - np.asarray(_TABLE_A) + np.asarray(_TABLE_B) + rng.uniform(-0.03, 0.03, 2)
        return SceneSpec([ta, tb, box, *items]), (SkillStep("pick_place", "box_a", _grasp_offset(box, dest)),)
    if name == "pick_place":
        on_b = rng.random() < 0.5
        spot = _spot(rng, _TABLE_B if on_b else _TABLE_A, [] if on_b else taken, reach_from=a_xy)
        steps = (SkillStep("pick_place", "box_a", _grasp_offset(box_a, spot)),)
    elif name == "push":
        for _ in range(200):
            heading, dist = rng.uniform(-np.pi, np.pi), rng.uniform(0.06, 0.15)
            end = a_xy + dist * np.array([np.cos(heading), np.sin(heading)])
            behind = a_xy - 0.08 * np.array([np.cos(heading), np.sin(heading)])
            clear = all(np.linalg.norm(end - q) >= 0.1 and np.linalg.norm(behind - q) >= 0.07 for q in taken[1:])
            if np.all(np.abs(end - np.asarray(_TABLE_A)) <= _HALF_TABLE - 0.06) and clear:
                break
        else:
            raise SceneError("no clear push line")
        steps = (SkillStep("push", "box_a", (round(float(heading), 4), round(float(dist), 4))),)
    elif name == "carry_stack":
        for _ in range(200):
            s1 = _spot(rng, _TABLE_B, [], reach_from=a_xy)
            if all(np.all(np.abs(s1 - q) <= 0.7) for q in taken[1:3]):
                break
        else:
            raise SceneError("no spot on table_b within reach of both boxes")
        steps = (SkillStep("pick_place", "box_a", _grasp_offset(box_a, s1)),
                 SkillStep("pick_place", "box_b", onto="box_a"), SkillStep("pick_place", "box_1", onto="box_b"))
    elif name == "push_stack":
        b_xy = taken[1]
        for _ in range(200):
            heading, dist = rng.uniform(-np.pi, np.pi), rng.uniform(0.06, 0.12)
            u = np.array([np.cos(heading), np.sin(heading)])
            end = a_xy + dist * u
            ok = np.all(np.abs(end - np.asarray(_TABLE_A)) <= _HALF_TABLE - 0.06)
            if ok and np.linalg.norm(end - b_xy) >= 0.1 and np.linalg.norm(a_xy - 0.08 * u - b_xy) >= 0.07 \
                    and all(np.linalg.norm(end - q) >= 0.09 for q in taken[2:]):
                break
        else:
            raise SceneError("no clear push line")
        steps = (SkillStep("push", "box_a", (round(float(heading), 4), round(float(dist), 4))),
                 SkillStep("pick_place", "box_b", onto="box_a"))
    else:
        raise ValueError(f"unknown skill task {name!r}; known: {', '.join(TASKS)}")
    return SceneSpec(objs), steps


def make_skill_task(name: str, seed: int, cfg: dict, domain: str = "train") -> SkillTask:
    """The task ``name`` in ``domain`` for ``seed`` (always the same one), validated."""
    if name not in TASKS:
        raise ValueError(f"unknown skill task {name!r}; known: {', '.join(TASKS)}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
    if domain != "train" and name not in OOD_TASKS:
        raise ValueError(f"{name} has no out-of-domain variants (they apply to {', '.join(OOD_TASKS)})")
    for attempt in range(50):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), TASKS.index(name), DOMAINS.index(domain), attempt]))
        try:
            scene, steps = _make(name, domain, rng, cfg)
            scene.validate(cfg)
            return SkillTask(name, domain, int(seed), scene, steps)
        except SceneError:
            continue
    raise SceneError(f"could not build a valid {name} scene for seed {seed} in domain {domain}")


def stack_params(lower_b, upper_b, lower_a, upper_a) -> tuple[float, float, float]:
    """pick_place parameters that put box B (grasped at its top centre) on top of box A."""
    gb = np.array([0.5 * (lower_b[0] + upper_b[0]), 0.5 * (lower_b[1] + upper_b[1]), upper_b[2]])
    top = np.array([0.5 * (lower_a[0] + upper_a[0]), 0.5 * (lower_a[1] + upper_a[1]), upper_a[2] + (upper_b[2] - lower_b[2])])
    return tuple(float(v) for v in np.round(top - gb, 4))
