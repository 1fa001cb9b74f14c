"""The simulator boundary: everything callers may ask of a physics backend.

Paper 000 generates data with a GPU-parallel simulator (IsaacGym); we embed MuJoCo
(:mod:`f2p_sim.mujoco_backend`) and keep callers (tasks, datagen, Real2Sim, the sim robot
node) on this interface so a GPU-parallel backend (e.g. MuJoCo-Warp/MJX) can be added by
implementing it, without touching them. One backend instance simulates one scene at a time;
parallelism is across processes (datagen) today, across batched worlds tomorrow.

The simulation state s_t of paper 000 §3 ("object pose and physical information like
friction") is exposed as :class:`SegmentState`; :meth:`SimBackend.get_state` /
:meth:`SimBackend.set_state` snapshot and restore the backend's full integration state (an
opaque vector valid for the loaded scene only).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from f2p_relations.relations import Boxes, Relations, compute_relations
from f2p_sim.scene import SceneSpec, Segment
from f2p_sim.skills import ExecutionPerturbation, SkillMonitor, SkillReport


@dataclass
class SegmentState:
    """Per-segment simulation state (rows follow ``SceneSpec.segments()``).

    pose          (S, 7) body position xyz and quaternion wxyz (world).
    box_lower/upper (S, 3) world AABB of the segment's geoms.
    mass, friction (S,) physical parameters.
    drawer_opening (S,) metres pulled out for drawers, NaN for other segments.
    """

    pose: np.ndarray
    box_lower: np.ndarray
    box_upper: np.ndarray
    mass: np.ndarray
    friction: np.ndarray
    drawer_opening: np.ndarray

    @property
    def boxes(self) -> Boxes:
        return Boxes(self.box_lower, self.box_upper)


class SimBackend(abc.ABC):
    """Abstract simulator: load a scene, step it, observe it, run skills in it."""

    @abc.abstractmethod
    def load(self, scene: SceneSpec, settle: bool = True) -> None:
        """Build the scene (validated first); optionally let it come to rest."""

    @property
    @abc.abstractmethod
    def scene(self) -> SceneSpec: ...

    @property
    @abc.abstractmethod
    def segments(self) -> list[Segment]: ...

    @abc.abstractmethod
    def get_state(self) -> np.ndarray:
        """Opaque full integration state (restore with set_state)."""

    @abc.abstractmethod
    def set_state(self, state: np.ndarray) -> None: ...

    @abc.abstractmethod
    def step(self, n: int = 1) -> None: ...

    @abc.abstractmethod
    def settle(self) -> int:
        """Step until every body is at rest (or a step cap); return the steps taken."""

    @abc.abstractmethod
    def segment_state(self) -> SegmentState: ...

    @abc.abstractmethod
    def contact_pairs(self) -> list[tuple[int, int]]:
        """Segment index pairs (i < j) in contact now (relation in_contact)."""

    @abc.abstractmethod
    def execute_skill(self, name: str, target: int, params, monitor: SkillMonitor | None = None,
                      perturbation: ExecutionPerturbation | None = None) -> SkillReport:
        """Run a skill of f2p_common.vocabulary.SKILLS on segment ``target`` with ``params``;
        ``monitor`` gets each motion phase and may stop the skill (``SkillReport.stopped``);
        ``perturbation`` makes the execution go wrong in physics (missed or slipping grasps)."""

    @abc.abstractmethod
    def raycast(self, origin: np.ndarray, directions: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """Cast unit rays; return (distance (R,), segment index (R,), -1 = no segment hit)."""

    @abc.abstractmethod
    def gripper_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The gripper's position (3,) m and orientation quaternion (x, y, z, w), world frame."""

    @property
    @abc.abstractmethod
    def time(self) -> float:
        """Simulated time (s) since the scene was loaded."""

    @abc.abstractmethod
    def stability_issues(self) -> list[str]:
        """Problems that make the current state untrustworthy (flying objects, penetration)."""

    def relations(self) -> Relations:
        """Ground-truth relations of the current state (paper 000 A.9, f2p_relations)."""
        st = self.segment_state()
        segs = self.segments
        return compute_relations(st.boxes, [s.cls for s in segs], contacts=self.contact_pairs(),
                                 drawer_openings=st.drawer_opening, names=[s.name for s in segs])
