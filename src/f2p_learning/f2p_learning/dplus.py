"""The targeted dataset D+ (paper 000 §5.3): every (state, action) pair of a method simulated.

:func:`simulate_pairs` turns the pairs of any method (:mod:`f2p_learning.pairs`) into
transitions identically: Real2Sim builds the scene of O_F moved by the offsets ξ(s_i), the
simulator renders O+_i, executes φ_F(a_i), renders O++_i, and the relations of both states are
recorded. The result is a dataset folder (``f2p_common.dataset``) that training reads like any
other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from f2p_common.dataset import FLAG_UNSEEN_SEGMENT
from f2p_failure.events import FailureEvent
from f2p_datasets.datagen import record_step, scene_record, snapshot, write_rows
from f2p_datasets.perceived import SIMULATOR, PerceivedObserver
from f2p_sim.observation import Camera
from f2p_sim.real2sim import scene_from_segments
from f2p_sim.scene import SceneError

from .pairs import Pairs


class NoTrainingDataError(ValueError):
    """No pair gave a transition fine-tuning can use (no buildable scene, or none seen whole)."""


@dataclass
class DPlus:
    """A written D+ folder: its manifest, the pairs ``built`` into scenes, the ``usable`` ones (the
    camera saw every segment) and the ``skipped`` pairs with the reason Real2Sim gave."""

    folder: Path
    manifest: dict
    built: int
    usable: int
    skipped: list[dict] = field(default_factory=list)


def simulate_pairs(event: FailureEvent, pairs: Pairs, backend, folder, camera: str = "front",
                   points_per_segment: int = 512, seed: int = 0, observer: PerceivedObserver | None = None) -> DPlus:
    """Run every pair in simulation and write the dataset folder. NoTrainingDataError when no
    transition is usable. ``observer``: O+ and O++ as the robot's perception reports them (the
    dataset is then read as the robot's scene, ``f2p_training.transitions.load_transitions``);
    None: the simulator's own segments."""
    rng = np.random.default_rng(seed)
    cam = Camera.from_config(backend.cfg, camera)
    rows, scenes, skipped = [], [], []
    for i in range(pairs.offsets.shape[0]):
        try:
            r2s = scene_from_segments(event.observation_before, event.segment_labels, backend.cfg,
                                      offsets=pairs.offsets[i], names=event.segment_ids)
            backend.load(r2s.scene)
        except SceneError as e:
            skipped.append({"particle": i, "reason": str(e)})
            continue
        scenes.append(scene_record(backend, r2s.scene, f"d+:{pairs.method}", seed, camera,
                                   event_id=event.event_id, particle=i))
        before = snapshot(backend, cam, None, rng, points_per_segment, observer)
        row, _ = record_step(backend, event.skill, r2s.segment_map[event.target], tuple(pairs.actions[i]),
                             before, cam, None, rng, points_per_segment, observer)
        row.update(scene_index=len(scenes) - 1, step=0)
        rows.append(row)
    if not rows:
        raise NoTrainingDataError(f"none of the {pairs.offsets.shape[0]} particles gave a buildable scene: {skipped[:3]}")
    usable = sum(1 for r in rows if _usable(r, observer is not None))
    if usable == 0:   # training skips these rows: fine-tuning would have nothing to learn from
        raise NoTrainingDataError(f"none of the {len(rows)} built transitions is usable: in every one a segment "
                                  "fine-tuning needs got no points from the camera")
    record = {"source": "targeted", "method": pairs.method, "event_id": event.event_id,
              "particles": int(pairs.offsets.shape[0]), "seed": seed, "camera": camera,
              "points_per_segment": points_per_segment,
              "perception": SIMULATOR if observer is None else observer.params.backend}
    manifest = write_rows(folder, rows, scenes, points_per_segment, record, backend.cfg)
    return DPlus(Path(folder), manifest, len(rows), usable, skipped)


def _usable(row: dict, perceived: bool) -> bool:
    """Whether fine-tuning can learn from ``row``: every segment seen (the simulator's segments),
    or, perceived, the target seen before and every object seen before also seen after (the
    robot's scene leaves out what it did not perceive; ``load_transitions``)."""
    if not perceived:
        return not int(row["flags"]) & FLAG_UNSEEN_SEGMENT
    before, after = row["before"][0].counts > 0, row["after"][0].counts > 0
    return bool(before[row["target"]] and after[before].all())
