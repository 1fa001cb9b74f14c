"""The one vocabulary of f2p: relations, object classes, skills and their parameter boxes,
each task's skill library.

Relations follow paper 000 A.9; skills and their continuous parameters follow paper 000
A.10; the tasks are paper 000 §6 / A.2's. Every package (simulator, relation detector,
skill-effect model, planner, learner, messages) takes names, orders and parameter boxes from
here. No ROS import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Unary relations (paper 000 A.9): movability, drawer identification, drawer state.
UNARY_RELATIONS: tuple[str, ...] = ("movable", "is_drawer", "drawer_open")

#: Binary relations (paper 000 A.9), read "subject <predicate> object":
#: six spatial relations, in-contact, boundary (subject near an edge of the supporting
#: object) and inside (subject's box contained in object's box).
BINARY_RELATIONS: tuple[str, ...] = (
    "left", "right", "front", "behind", "above", "below",
    "in_contact", "boundary", "inside",
)

RELATIONS: tuple[str, ...] = UNARY_RELATIONS + BINARY_RELATIONS

#: Semantic object classes known to f2p scenes and detectors (the sim config gives each its
#: shape prior and physical parameters). Order is the class index used in datasets.
OBJECT_CLASSES: tuple[str, ...] = ("table", "shelf", "cabinet", "drawer", "bin", "bag", "cup", "cuboid")
#: Classes whose instances can be moved by pick-and-place or push (paper A.9 "movability").
MOVABLE_CLASSES: frozenset[str] = frozenset({"bin", "bag", "cup", "cuboid"})
#: Classes that are drawers (paper A.9 "drawer identification").
DRAWER_CLASSES: frozenset[str] = frozenset({"drawer"})
#: Open containers: things can be put inside them.
CONTAINER_CLASSES: frozenset[str] = frozenset({"bin", "bag", "cup", "drawer"})


def is_unary(predicate: str) -> bool:
    """True for a unary predicate, False for a binary one; ValueError if unknown."""
    if predicate in UNARY_RELATIONS:
        return True
    if predicate in BINARY_RELATIONS:
        return False
    raise ValueError(f"unknown relation predicate {predicate!r}; known: {', '.join(RELATIONS)}")


def check_object_class(label: str) -> str:
    """``label`` if it is one of :data:`OBJECT_CLASSES`; ValueError naming the known ones."""
    if label not in OBJECT_CLASSES:
        raise ValueError(f"unknown object class {label!r}; known: {', '.join(OBJECT_CLASSES)}")
    return label


# ---------------------------------------------------------------------------- parameter boxes
def normalise(a, low, high):
    """Map parameters ``a`` in the box [low, high] to [-1, 1] per dimension (numpy or torch;
    ``low`` / ``high`` of the same kind). The one box normalisation of f2p: the skill-effect
    model's skill encoding (A.11.2) and the learner's action particles (A.13.2) use it."""
    return 2 * (a - low) / (high - low) - 1


def denormalise(u, low, high):
    """Inverse of :func:`normalise`: [-1, 1] per dimension back to the box [low, high]."""
    return low + (u + 1) * 0.5 * (high - low)


@dataclass(frozen=True)
class SkillSpec:
    """A skill primitive phi_k and the box of its continuous parameter a_k (paper 000 §3, A.10).

    `targets` is the number of object ids the skill takes; `parameter_names`, `low` and
    `high` give the order, meaning (SI units, scene frame) and bounds of a_k;
    `target_requirement` is the unary relation its target must have (a planner enumerating
    skeletons acts only on such objects).
    """

    name: str
    targets: int
    parameter_names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    target_requirement: str
    description: str

    @property
    def dim(self) -> int:
        return len(self.parameter_names)

    @property
    def index(self) -> int:
        """Position in :data:`SKILLS` (the skill index of the model and of datasets)."""
        return skill_index(self.name)

    def check(self, parameters) -> None:
        """Raise ValueError unless `parameters` has the right length, is finite and in the box."""
        params = [float(p) for p in parameters]
        if len(params) != self.dim:
            raise ValueError(
                f"skill {self.name!r} takes {self.dim} parameters {list(self.parameter_names)}, "
                f"got {len(params)}")
        for name, value, lo, hi in zip(self.parameter_names, params, self.low, self.high):
            if not math.isfinite(value):
                raise ValueError(f"skill {self.name!r} parameter {name} is not finite: {value}")
            if not lo <= value <= hi:
                raise ValueError(
                    f"skill {self.name!r} parameter {name}={value:g} is outside its box [{lo:g}, {hi:g}]")

    def to_unit(self, parameters) -> np.ndarray:
        """(..., dim) parameters in this skill's box → [-1, 1] (:func:`normalise`)."""
        return normalise(np.asarray(parameters), np.asarray(self.low), np.asarray(self.high))

    def from_unit(self, u) -> np.ndarray:
        """(..., dim) values in [-1, 1] → parameters in the box; clipped to [-1, 1] first and
        to the box after, so rounding never leaves the box (a skill refuses lo - 1e-16)."""
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        return np.clip(denormalise(np.clip(np.asarray(u, np.float64), -1, 1), lo, hi), lo, hi)


#: The skill library L (paper 000 A.10). Order matters: it is the skill index of the model.
SKILLS: dict[str, SkillSpec] = {
    spec.name: spec
    for spec in (
        SkillSpec(
            "pick_place", 1, ("dx", "dy", "dz"), (-0.8, -0.8, -0.2), (0.8, 0.8, 0.6), "movable",
            "grasp the target and place it at grasp position + (dx, dy, dz) metres"),
        SkillSpec(
            "push", 1, ("direction", "distance"), (-math.pi, 0.0), (math.pi, 0.4), "movable",
            "push the target along heading `direction` (rad about +z, 0 = +x) for `distance` metres"),
        SkillSpec(
            "open_drawer", 1, ("distance",), (0.0,), (0.3,), "is_drawer",
            "pull the target drawer out by `distance` metres"),
        SkillSpec(
            "close_drawer", 1, ("distance",), (0.0,), (0.3,), "is_drawer",
            "push the target drawer in by `distance` metres"),
    )
}

#: A stable placement: a put-down object's centre lies inside the edge of what it rests on by a
#: quarter of the object's own extent (along each axis: three quarters of it stand on it) plus
#: this many m — or by a quarter of the support's extent, when that is less (a cuboid stacked on
#: a cuboid). A perceived box is off by a centimetre and a grasp lands within two; an object put
#: down nearer the edge hangs over it or bridges the gap to the next table, and tilts (measured:
#: a bin half over a table's front edge tipped, and the camera read it with the table's side as
#: one segment). The planner proposes stable placements; Guardian refuses the others.
PLACEMENT_MARGIN: float = 0.03

#: Skill parameters are zero-padded to this many values wherever skills share one array
#: (datasets' ``params`` (T, PARAM_DIM), the model's skill encoding).
PARAM_DIM: int = max(s.dim for s in SKILLS.values())

#: Each task's skill library (paper 000 §6, A.2): transport and organisation are solved by
#: pick-and-place, constrained packing needs pushes as well. Keys are the task kinds.
TASK_SKILLS: dict[str, tuple[str, ...]] = {
    "transport": ("pick_place",),
    "organize": ("pick_place",),
    "packing": ("push", "pick_place"),
}


def skill_displacement(name: str, parameters) -> tuple[float, float, float] | None:
    """Where a skill moves its target, relative to where it is (m, the parameters' frame), as
    its parameters say (A.10): pick_place sets it down (dx, dy) away (its height is where it
    comes to rest, so 0), push slides it ``distance`` along ``direction``; None for the drawer
    skills (their direction is the drawer's). ValueError for an unknown skill or bad parameters."""
    spec = skill(name)
    spec.check(parameters)
    if name == "pick_place":
        return float(parameters[0]), float(parameters[1]), 0.0
    if name == "push":
        return float(parameters[1] * math.cos(parameters[0])), float(parameters[1] * math.sin(parameters[0])), 0.0
    return None


def skill(name: str) -> SkillSpec:
    """The SkillSpec of `name`; ValueError naming the known skills if unknown."""
    try:
        return SKILLS[name]
    except KeyError:
        raise ValueError(f"unknown skill {name!r}; known: {', '.join(SKILLS)}") from None


_SKILL_INDEX = {name: i for i, name in enumerate(SKILLS)}


def skill_index(name: str) -> int:
    """Index of skill `name` in :data:`SKILLS` order; ValueError if unknown."""
    if name not in _SKILL_INDEX:
        skill(name)
    return _SKILL_INDEX[name]


def padded_parameter_box(name: str, pad_low: float = 0.0, pad_high: float = 0.0) -> tuple[list[float], list[float]]:
    """(low, high) of skill `name`, each padded to :data:`PARAM_DIM` values with ``pad_low`` /
    ``pad_high`` (the default degenerate box [0, 0] keeps padded dimensions at 0)."""
    spec = skill(name)
    pad = PARAM_DIM - spec.dim
    return list(spec.low) + [pad_low] * pad, list(spec.high) + [pad_high] * pad
