"""Scene specifications, validation and programmatic MJCF generation.

A scene is a list of :class:`ObjectSpec` (class, full bounding-box size, bounding-box center
and yaw about +z). Each class has a *shape prior* (paper 000 A.12: "cuboids, open boxes,
shelves, drawers, and tables") that turns the box into box geoms:

* ``box``      (cuboid): one solid box, free joint.
* ``open_box`` (bin, bag, cup): floor and four walls, open top, free joint.
* ``table``:   top slab and four legs, static.
* ``shelf``:   a solid base up to the board and a back wall (+x) above it; open front, top
               and sides so a gripper can push along the board; static. Things on the
               board are inside its box.
* ``cabinet``: a shell open at the front (-x) holding a sliding ``drawer`` (an open box on a
               slide joint along x, its front flush with the cabinet front when closed).
               A cabinet yields two segments: the cabinet and ``<name>_drawer``.

Per-class masses and frictions come from ``config/sim/world.yaml`` unless the ObjectSpec
overrides them. Every geom is a box, so exact world AABBs are cheap (relations) and rays
hit well-defined faces (observations).

Validation (:meth:`SceneSpec.validate`) rejects unknown classes, non-finite or
non-positive numbers, duplicate names, objects outside the workspace and interpenetrating
objects, each with an error naming the offending object(s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from f2p_common.vocabulary import MOVABLE_CLASSES, OBJECT_CLASSES

#: Two objects whose box geoms overlap by more than this (m) on every axis interpenetrate.
OVERLAP_TOL = 0.002
#: Clearance (m) between a drawer and its cabinet cavity on each side.
DRAWER_CLEARANCE = 0.005
#: Geom group of the gripper: rays exclude it so the gripper never appears in clouds.
GRIPPER_GEOM_GROUP = 5


class SceneError(ValueError):
    """An invalid scene specification (message names the object and the problem)."""


@dataclass
class ObjectSpec:
    """One object: semantic class, full box size (m), box center (m), yaw (rad about +z).

    ``mass``/``friction`` default to the class values of the world config. ``drawer_opening``
    (m) only applies to cabinets: how far their drawer is pulled out.
    """

    name: str
    cls: str
    size: tuple[float, float, float]
    pos: tuple[float, float, float]
    yaw: float = 0.0
    mass: float | None = None
    friction: float | None = None
    drawer_opening: float = 0.0

    @property
    def movable(self) -> bool:
        return self.cls in MOVABLE_CLASSES


@dataclass(frozen=True)
class Segment:
    """A segment of the observation / a row of the relation tensor."""

    name: str
    cls: str
    object_index: int      # index in SceneSpec.objects
    body: str              # MuJoCo body name


@dataclass
class SceneSpec:
    objects: list[ObjectSpec] = field(default_factory=list)

    def segments(self) -> list[Segment]:
        """Segments in order: each object, and right after a cabinet its drawer."""
        out = []
        for i, o in enumerate(self.objects):
            out.append(Segment(o.name, o.cls, i, o.name))
            if o.cls == "cabinet":
                out.append(Segment(f"{o.name}_drawer", "drawer", i, f"{o.name}_drawer"))
        return out

    def index(self, name: str) -> int:
        for i, o in enumerate(self.objects):
            if o.name == name:
                return i
        raise SceneError(f"no object named {name!r} in the scene")

    def movable_count(self) -> int:
        return sum(o.movable for o in self.objects)

    def validate(self, cfg: dict, movable_range: tuple[int, int] | None = None) -> None:
        """Raise SceneError for the first problem found (see module docstring)."""
        validate_scene(self, cfg, movable_range)

    def to_dict(self) -> dict:
        return {"objects": [
            {"name": o.name, "cls": o.cls, "size": [float(v) for v in o.size], "pos": [float(v) for v in o.pos],
             "yaw": float(o.yaw), "mass": o.mass, "friction": o.friction, "drawer_opening": float(o.drawer_opening)}
            for o in self.objects]}

    @classmethod
    def from_dict(cls, d: dict) -> "SceneSpec":
        return cls([ObjectSpec(name=o["name"], cls=o["cls"], size=tuple(o["size"]), pos=tuple(o["pos"]),
                               yaw=o.get("yaw", 0.0), mass=o.get("mass"), friction=o.get("friction"),
                               drawer_opening=o.get("drawer_opening", 0.0)) for o in d["objects"]])


# --------------------------------------------------------------------------------------
# Shape priors: local box geoms (center, half size) in the object's box frame.

def _open_box_geoms(half: np.ndarray, t: float) -> list[tuple[np.ndarray, np.ndarray]]:
    hx, hy, hz = half
    t = min(t, hx, hy, hz)
    wall_hz = hz - t / 2
    return [
        (np.array([0.0, 0.0, -hz + t / 2]), np.array([hx, hy, t / 2])),           # floor
        (np.array([-(hx - t / 2), 0.0, t / 2]), np.array([t / 2, hy, wall_hz])),   # front wall (-x)
        (np.array([hx - t / 2, 0.0, t / 2]), np.array([t / 2, hy, wall_hz])),      # back wall (+x)
        (np.array([0.0, hy - t / 2, t / 2]), np.array([hx - t, t / 2, wall_hz])),  # left wall (+y)
        (np.array([0.0, -(hy - t / 2), t / 2]), np.array([hx - t, t / 2, wall_hz])),  # right wall
    ]


def object_geoms(obj: ObjectSpec, cfg: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Box geoms (local center, half size) of the object's *own* body (not its drawer)."""
    ccfg = cfg["classes"][obj.cls]
    half = 0.5 * np.asarray(obj.size, dtype=np.float64)
    hx, hy, hz = half
    shape = ccfg["shape"]
    if shape == "box":
        return [(np.zeros(3), half)]
    if shape == "open_box":
        return _open_box_geoms(half, float(ccfg["wall_thickness"]))
    if shape == "table":
        tt = min(float(ccfg["top_thickness"]), 2 * hz)
        leg = min(float(ccfg["leg_size"]), hx, hy)
        geoms = [(np.array([0.0, 0.0, hz - tt / 2]), np.array([hx, hy, tt / 2]))]
        for sx in (-1, 1):
            for sy in (-1, 1):
                geoms.append((np.array([sx * (hx - leg / 2), sy * (hy - leg / 2), -tt / 2]),
                              np.array([leg / 2, leg / 2, hz - tt / 2])))
        return geoms
    if shape == "shelf":
        t = float(ccfg["wall_thickness"])
        wh = min(float(ccfg["wall_height"]), 2 * hz - 0.05)
        return [
            (np.array([0.0, 0.0, -wh / 2]), np.array([hx, hy, hz - wh / 2])),             # base up to board
            (np.array([hx - t / 2, 0.0, hz - wh / 2]), np.array([t / 2, hy, wh / 2])),     # back wall
        ]
    if shape == "cabinet":
        t = float(ccfg["wall_thickness"])
        return [
            (np.array([0.0, 0.0, -hz + t / 2]), np.array([hx, hy, t / 2])),               # bottom
            (np.array([0.0, 0.0, hz - t / 2]), np.array([hx, hy, t / 2])),                # top
            (np.array([hx - t / 2, 0.0, 0.0]), np.array([t / 2, hy, hz - t])),            # back
            (np.array([-t / 2, hy - t / 2, 0.0]), np.array([hx - t / 2, t / 2, hz - t])),  # left
            (np.array([-t / 2, -(hy - t / 2), 0.0]), np.array([hx - t / 2, t / 2, hz - t])),  # right
        ]
    raise SceneError(f"class {obj.cls!r} has unknown shape prior {shape!r}")


def shelf_board_height(obj: ObjectSpec, cfg: dict) -> float:
    """World z of a shelf's board (top of its base)."""
    wh = min(float(cfg["classes"]["shelf"]["wall_height"]), obj.size[2] - 0.05)
    return obj.pos[2] + obj.size[2] / 2 - wh


def drawer_layout(cabinet: ObjectSpec, cfg: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Drawer of a cabinet: (closed center in cabinet frame, full size, max opening)."""
    t = float(cfg["classes"]["cabinet"]["wall_thickness"])
    sx, sy, sz = cabinet.size
    c = DRAWER_CLEARANCE
    size = np.array([sx - t - c, sy - 2 * t - 2 * c, sz - 2 * t - 2 * c])
    # Front face flush with the cabinet's front face (x = -sx/2) when closed.
    center = np.array([-sx / 2 + size[0] / 2, 0.0, 0.0])
    max_open = size[0] - 0.04
    return center, size, max_open


def drawer_geoms(cabinet: ObjectSpec, cfg: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    _, size, _ = drawer_layout(cabinet, cfg)
    return _open_box_geoms(0.5 * size, float(cfg["classes"]["drawer"]["wall_thickness"]))


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def world_geom_aabbs(obj: ObjectSpec, cfg: dict, include_drawer: bool = True) -> np.ndarray:
    """(G, 2, 3) world AABBs of the object's geoms at its spec pose (drawer at its opening)."""
    rot = yaw_matrix(obj.yaw)
    pos = np.asarray(obj.pos, dtype=np.float64)
    geoms = [(pos + rot @ c, h) for c, h in object_geoms(obj, cfg)]
    if obj.cls == "cabinet" and include_drawer:
        center, _, _ = drawer_layout(obj, cfg)
        dpos = center + np.array([-obj.drawer_opening, 0.0, 0.0])
        geoms += [(pos + rot @ (dpos + c), h) for c, h in drawer_geoms(obj, cfg)]
    arot = np.abs(rot)
    return np.array([[c - arot @ h, c + arot @ h] for c, h in geoms])


def validate_scene(scene: SceneSpec, cfg: dict, movable_range: tuple[int, int] | None = None) -> None:
    names = set()
    ws_lo = np.asarray(cfg["workspace"]["lower"], dtype=np.float64)
    ws_hi = np.asarray(cfg["workspace"]["upper"], dtype=np.float64)
    if not scene.objects:
        raise SceneError("scene has no objects")
    for o in scene.objects:
        if not o.name or "/" in o.name:
            raise SceneError(f"object name {o.name!r} must be non-empty and contain no '/'")
        if o.name in names:
            raise SceneError(f"duplicate object name {o.name!r}")
        names.add(o.name)
        if o.cls not in OBJECT_CLASSES or o.cls == "drawer":
            raise SceneError(f"object {o.name!r}: unknown or non-placeable class {o.cls!r}; "
                             f"known: {', '.join(c for c in OBJECT_CLASSES if c != 'drawer')} "
                             "(drawers come with a cabinet)")
        vals = [*o.size, *o.pos, o.yaw, o.drawer_opening]
        if len(o.size) != 3 or len(o.pos) != 3:
            raise SceneError(f"object {o.name!r}: size and pos need 3 values")
        if not all(math.isfinite(float(v)) for v in vals):
            raise SceneError(f"object {o.name!r}: non-finite size/pose {o.size} {o.pos} yaw={o.yaw}")
        if min(o.size) <= 0.005:
            raise SceneError(f"object {o.name!r}: every size must exceed 5 mm, got {o.size}")
        for attr in ("mass", "friction"):
            v = getattr(o, attr)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise SceneError(f"object {o.name!r}: {attr} must be positive and finite, got {v}")
        if o.cls == "cabinet":
            _, _, max_open = drawer_layout(o, cfg)
            if not 0.0 <= o.drawer_opening <= max_open:
                raise SceneError(f"cabinet {o.name!r}: drawer_opening {o.drawer_opening} outside [0, {max_open:.3f}]")
        aabbs = world_geom_aabbs(o, cfg)
        if np.any(aabbs[:, 0] < ws_lo - 1e-9) or np.any(aabbs[:, 1] > ws_hi + 1e-9):
            raise SceneError(f"object {o.name!r} lies outside the workspace {ws_lo.tolist()}..{ws_hi.tolist()}")
    if movable_range is not None:
        n = scene.movable_count()
        if not movable_range[0] <= n <= movable_range[1]:
            raise SceneError(f"scene has {n} movable objects; needs {movable_range[0]}..{movable_range[1]}")
    boxes = [world_geom_aabbs(o, cfg) for o in scene.objects]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            # Penetration depth per geom pair per axis; interpenetrating if positive on all axes.
            depth = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
            if np.any(np.all(depth > OVERLAP_TOL, axis=-1)):
                raise SceneError(f"objects {scene.objects[i].name!r} and {scene.objects[j].name!r} overlap")


# --------------------------------------------------------------------------------------
# MJCF generation

def _fmt(v) -> str:
    return " ".join(f"{float(x):.6g}" for x in np.atleast_1d(v))


def _quat_yaw(yaw: float) -> str:
    return _fmt([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def _geoms_xml(name: str, geoms, friction: float, rgba, mass: float | None) -> list[str]:
    vols = np.array([np.prod(2 * h) for _, h in geoms])
    out = []
    for k, (c, h) in enumerate(geoms):
        m = "" if mass is None else f' mass="{mass * vols[k] / vols.sum():.6g}"'
        out.append(f'<geom name="{name}/g{k}" type="box" pos="{_fmt(c)}" size="{_fmt(h)}" '
                   f'friction="{friction:.6g} 0.005 0.0001" rgba="{_fmt(rgba)}"{m}/>')
    return out


def class_mass(obj: ObjectSpec, cfg: dict) -> float:
    ccfg = cfg["classes"][obj.cls]
    if obj.mass is not None:
        return float(obj.mass)
    if "mass" in ccfg:
        return float(ccfg["mass"])
    lo, hi = ccfg.get("mass_range", (0.1, 0.1))
    return 0.5 * (float(lo) + float(hi))


def build_mjcf(scene: SceneSpec, cfg: dict) -> str:
    """MJCF text of the scene: floor, objects, mocap gripper, one inactive weld per graspable body."""
    phys = cfg["physics"]
    grip = cfg["gripper"]
    body_xml, welds = [], []
    for o in scene.objects:
        ccfg = cfg["classes"][o.cls]
        fr = float(o.friction if o.friction is not None else ccfg["friction"])
        rgba = ccfg.get("rgba", [0.5, 0.5, 0.5, 1])
        lines = [f'<body name="{o.name}" pos="{_fmt(o.pos)}" quat="{_quat_yaw(o.yaw)}">']
        if o.movable:
            lines.append(f'<freejoint name="{o.name}/free"/>')
            lines += _geoms_xml(o.name, object_geoms(o, cfg), fr, rgba, class_mass(o, cfg))
            welds.append(o.name)
        else:
            lines += _geoms_xml(o.name, object_geoms(o, cfg), fr, rgba, None)
        if o.cls == "cabinet":
            dcfg = cfg["classes"]["drawer"]
            center, _, max_open = drawer_layout(o, cfg)
            dname = f"{o.name}_drawer"
            lines.append(f'<body name="{dname}" pos="{_fmt(center)}">')
            # Opening the drawer moves it along -x of the cabinet: joint value = -opening.
            lines.append(f'<joint name="{dname}/slide" type="slide" axis="1 0 0" range="{-max_open:.6g} 0" '
                         f'limited="true" damping="{float(dcfg["damping"]):.6g}" solreflimit="0.002 1" '
                         f'solimplimit="0.99 0.999 0.001"/>')
            lines += _geoms_xml(dname, drawer_geoms(o, cfg), float(dcfg["friction"]), dcfg.get("rgba", [0.6] * 3 + [1]),
                                float(dcfg["mass"]))
            lines.append("</body>")
            welds.append(dname)
        lines.append("</body>")
        body_xml.append("\n".join(lines))
    pad = 0.5 * np.asarray(grip["pad_size"], dtype=np.float64)
    weld_xml = "\n".join(f'<weld name="grasp/{b}" body1="gripper" body2="{b}" active="false" solref="0.01 1"/>'
                         for b in welds)
    return f"""<mujoco model="f2p_scene">
<compiler angle="radian" autolimits="true"/>
<option timestep="{float(phys['timestep']):.6g}" integrator="{phys['integrator']}"
        iterations="{int(phys['solver_iterations'])}" gravity="{_fmt(phys['gravity'])}"/>
<worldbody>
<geom name="floor" type="plane" size="0 0 0.05" rgba="0.8 0.8 0.8 1" friction="1 0.005 0.0001"/>
{chr(10).join(body_xml)}
<body name="gripper" mocap="true" pos="{_fmt(grip['home'])}">
<geom name="gripper/pad" type="box" size="{_fmt(pad)}" group="{GRIPPER_GEOM_GROUP}" rgba="0.1 0.1 0.1 1"/>
</body>
</worldbody>
<equality>
{weld_xml}
</equality>
</mujoco>
"""


def with_object(scene: SceneSpec, index: int, **changes) -> SceneSpec:
    """A copy of the scene with object ``index`` changed (dataclasses.replace)."""
    objs = list(scene.objects)
    objs[index] = replace(objs[index], **changes)
    return SceneSpec(objs)


def object_aabb(obj: ObjectSpec, cfg: dict, include_drawer: bool = False) -> np.ndarray:
    """(2, 3) world AABB of the object at its spec pose."""
    a = world_geom_aabbs(obj, cfg, include_drawer=include_drawer)
    return np.stack([a[:, 0].min(axis=0), a[:, 1].max(axis=0)])


def container_inner_floor(obj: ObjectSpec, cfg: dict) -> float:
    """World z of the top of an open box's floor."""
    t = min(float(cfg["classes"][obj.cls].get("wall_thickness", 0.0)), 0.5 * min(obj.size))
    return obj.pos[2] - obj.size[2] / 2 + t


def supporting_top(obj: ObjectSpec, cfg: dict) -> float:
    """World z on which things placed on this object rest (table top, shelf board, container floor)."""
    shape = cfg["classes"][obj.cls]["shape"]
    if shape == "shelf":
        return shelf_board_height(obj, cfg)
    if shape == "open_box":
        return container_inner_floor(obj, cfg)
    return obj.pos[2] + obj.size[2] / 2


def inner_footprint(obj: ObjectSpec, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(lower xy, upper xy) of the free area on/inside the object (axis-aligned, yaw ignored)."""
    shape = cfg["classes"][obj.cls]["shape"]
    c = np.asarray(obj.pos[:2], dtype=np.float64)
    h = 0.5 * np.asarray(obj.size[:2], dtype=np.float64)
    if shape in ("open_box",):
        t = float(cfg["classes"][obj.cls]["wall_thickness"])
        return c - h + t, c + h - t
    if shape == "shelf":
        t = float(cfg["classes"]["shelf"]["wall_thickness"])
        return c + np.array([-h[0], -h[1]]), c + np.array([h[0] - t, h[1]])
    return c - h, c + h


def check_sequence(values: Sequence[float], n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n or not np.all(np.isfinite(arr)):
        raise SceneError(f"{what} must be {n} finite numbers, got {values}")
    return arr
