"""Relation detection: a segmented scene to its relation state R_t (paper 000 A.9, §4).

Every backend implements :class:`RelationDetector`: ``detect(SegmentedScene) -> RelationState``
over the scene's object ids (probabilities; 0/1 for a rule). Backends (:data:`DETECTORS`):

``geometric``  the one relation module (:func:`f2p_relations.relations.compute_relations`) on
               the axis-aligned boxes of the objects' points; in-contact from box gaps, drawer
               openings from boxes. Partial views make the boxes smaller than the objects.
``learned``    the skill-effect model's detection head Dec(Enc(O_t)) (A.11.2) from a checkpoint
               (the robot's current model, or another one).

No ROS; the learned backend imports torch and f2p_skill_effect only when it is built.
"""
from __future__ import annotations

import abc
from pathlib import Path

from f2p_common.backends import Registry
from f2p_common.interfaces import RelationState, SegmentedScene
from f2p_relations.relations import boxes_from_clouds, compute_relations


class RelationDetector(abc.ABC):
    """A relation-detection backend."""

    name: str = ""

    @abc.abstractmethod
    def detect(self, scene: SegmentedScene) -> RelationState:
        """R_t of ``scene``; ValueError when it cannot be computed (an object without points,
        an unknown class), saying which object."""

    @staticmethod
    def _check(scene: SegmentedScene) -> None:
        if not scene.objects:
            raise ValueError("the scene has no objects")
        empty = [o.id for o in scene.objects if len(o.points) == 0]
        if empty:
            raise ValueError(f"objects {empty} have no points: their relations cannot be detected")


class GeometricDetector(RelationDetector):
    """A.9's definitions on the objects' point boxes (module docstring), each box without the
    outermost ``trim`` of its points per side and axis (a depth camera's outliers: on 24 noisy
    transport scenes, above() misread 7 times with the exact extremes, 0 times at 0.2 %)."""

    name = "geometric"

    def __init__(self, trim: float = 0.002):
        self.trim = trim

    def detect(self, scene: SegmentedScene) -> RelationState:
        self._check(scene)
        rel = compute_relations(boxes_from_clouds(scene.clouds, self.trim), scene.labels)
        return RelationState.from_arrays(scene.object_ids, rel.unary, rel.binary, scene.frame_id, scene.stamp_ns)


class LearnedDetector(RelationDetector):
    """Dec(Enc(O_t)) of the skill-effect model in ``checkpoint`` (a verified checkpoint file: ''
    the shipped pre-trained model, a shipped model's file name, or a path), ``points`` resampled
    per object (default: the checkpoint's own). ValueError saying what is wrong with the file."""

    name = "learned"

    def __init__(self, checkpoint: str | Path = "", points: int | None = None, device: str = "cpu"):
        from f2p_skill_effect.checkpoint import CheckpointError, checkpoint_path, load_model
        try:
            self.model, self.checkpoint = load_model(checkpoint_path(str(checkpoint)))
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None
        self.model.to(device)
        self.device = device
        self.points = points or int(self.checkpoint.training_data.get("points_per_object", 128))
        self.version = self.checkpoint.version

    def detect(self, scene: SegmentedScene) -> RelationState:
        import torch
        from f2p_skill_effect.model import Observation
        self._check(scene)
        obs = Observation.from_clouds(scene.clouds, self.points, seed=0, max_objects=self.model.cfg.max_objects)
        n = len(scene.objects)
        with torch.no_grad():
            obs = Observation(obs.points.to(self.device), obs.mask.to(self.device))
            rel = self.model.detect(self.model.encode(obs), obs.mask)
        return RelationState.from_arrays(scene.object_ids, rel.unary[0, :n].cpu().numpy(),
                                         rel.binary[0, :n, :n].cpu().numpy(), scene.frame_id, scene.stamp_ns)


#: Relation detectors by name (the relation detector node's ``backend`` parameter).
DETECTORS = Registry("relation detector", {GeometricDetector.name: "f2p_relations.detectors:GeometricDetector",
                                           LearnedDetector.name: "f2p_relations.detectors:LearnedDetector"})
