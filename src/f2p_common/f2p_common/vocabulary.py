"""The one relation vocabulary and the one skill vocabulary of f2p.

Relations follow paper 000 A.9; skills and their continuous parameters follow paper 000
A.10. Every package (simulator, relation detector, skill-effect model, planner, learner,
messages) takes names, orders and parameter boxes from here. Pure Python: no ROS import.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

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


def is_unary(predicate: str) -> bool:
    """True for a unary predicate, False for a binary one; ValueError if unknown."""
    if predicate in UNARY_RELATIONS:
        return True
    if predicate in BINARY_RELATIONS:
        return False
    raise ValueError(f"unknown relation predicate {predicate!r}; known: {', '.join(RELATIONS)}")


@dataclass(frozen=True)
class SkillSpec:
    """A skill primitive phi_k and the box of its continuous parameter a_k (paper 000 §3).

    `targets` is the number of object ids the skill takes; `parameter_names`, `low` and
    `high` give the order, meaning (SI units, scene frame) and bounds of a_k.
    """

    name: str
    targets: int
    parameter_names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    description: str

    @property
    def dim(self) -> int:
        return len(self.parameter_names)

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


#: The skill library L (paper 000 A.10). Order matters: it is the skill index of the model.
SKILLS: dict[str, SkillSpec] = {
    spec.name: spec
    for spec in (
        SkillSpec(
            "pick_place", 1, ("dx", "dy", "dz"), (-0.8, -0.8, -0.2), (0.8, 0.8, 0.6),
            "grasp the target and place it at grasp position + (dx, dy, dz) metres"),
        SkillSpec(
            "push", 1, ("direction", "distance"), (-math.pi, 0.0), (math.pi, 0.4),
            "push the target along heading `direction` (rad about +z, 0 = +x) for `distance` metres"),
        SkillSpec(
            "open_drawer", 1, ("distance",), (0.0,), (0.3,),
            "pull the target drawer out by `distance` metres"),
        SkillSpec(
            "close_drawer", 1, ("distance",), (0.0,), (0.3,),
            "push the target drawer in by `distance` metres"),
    )
}


def skill(name: str) -> SkillSpec:
    """The SkillSpec of `name`; ValueError naming the known skills if unknown."""
    try:
        return SKILLS[name]
    except KeyError:
        raise ValueError(f"unknown skill {name!r}; known: {', '.join(SKILLS)}") from None
