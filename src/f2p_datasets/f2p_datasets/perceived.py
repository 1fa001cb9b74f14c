"""Observations as the robot perceives them (issue 45 part 3: Γ trained on what the robot sees).

The simulator's own observation (:func:`f2p_sim.observation.observe`) gives each object exactly
its own points: a segmenting camera. A robot has a plain depth camera, and its perception node
segments the organised cloud with a backend (``geometric``, ``convex``): fragments, merged
neighbours, a container read with its items, a table cut at an object's shadow. Γ trained only
on the former meets the latter for the first time on the robot.

:class:`PerceivedObserver` renders what the robot's camera would publish (every pixel of the
camera, the sensor's noise and missing returns: :func:`f2p_sim.observation.camera_cloud`),
runs the robot's segmentation on it (:func:`f2p_perception.segmentation.perceive`: the
perception node's depth filter, backend and point limit) and hands each simulator object the
perceived segment that is mostly its own, all of that segment's points included — so the
object's row holds what the robot would feed Γ for it, and the simulator's relations of that
object stay its labels:

* a segment goes to the object most of its pixels belong to; an object takes, of the segments
  that went to it, the one with most of its pixels (a fragment of it is left out, as the robot's
  tracker would give it an id of its own);
* an object no segment went to (merged into a neighbour's segment, e.g. the items read with
  the container that holds them, or too few points) has no points: the transition is flagged
  ``FLAG_UNSEEN_SEGMENT``, as for an object the camera cannot see.

The tracker that keeps ids from frame to frame on the robot is not run here: the simulator names
every object, and ids do not change what Γ sees of an object (the tracker's failures are
measured through the graph, ``benchmarks/perceived_loop.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from f2p_common.interfaces import NO_OBJECT
from f2p_perception.segmentation import SEGMENTERS, SensorFrame, perceive, point_indices
from f2p_sim.observation import Camera, NoiseModel, Observation, camera_cloud, resample_fixed

#: ``DatagenParams.perception`` for the simulator's own segments (no robot perception).
SIMULATOR = "simulator"
#: A structured-light depth sensor's noise as (depth_std m, point_std m, dropout): the perceived
#: datasets the shipped perceived models learned from, the learner's perceived D+ and the demo's
#: perceived camera (a Kinect-class sensor: a few mm at 1 m, a tenth of the returns missing).
SENSOR_NOISE = (0.004, 0.002, 0.1)
#: Backends that segment a plain depth cloud (what a robot has); the others need the simulator's
#: labels (labelled_cloud) or a colour image and weights (yolo_seg, sam).
DEPTH_BACKENDS = ("geometric", "convex")


@dataclass(frozen=True)
class PerceptionParams:
    """The robot's segmentation as the perception node runs it (config/<robot>.yaml's perception
    parameters of the same names)."""

    backend: str = "geometric"
    depth_median: int = 5
    min_points: int = 10
    max_object_points: int = 4096

    def validate(self) -> None:
        if self.backend not in DEPTH_BACKENDS:
            raise ValueError(f"perceived observations segment a depth cloud: backend one of "
                             f"{', '.join(DEPTH_BACKENDS)}, not {self.backend!r}")
        if self.depth_median not in (0, 3, 5) or self.min_points < 1 or self.max_object_points < 1:
            raise ValueError("depth_median must be 0, 3 or 5; min_points and max_object_points >= 1")


def owners(instance: np.ndarray, segments: list[np.ndarray], num_objects: int) -> np.ndarray:
    """For each simulator object, the index of the segment that is its perceived view (module
    docstring), -1 for none. ``instance`` (P,): the simulator object of each pixel (NO_OBJECT:
    none); ``segments``: each perceived segment's pixel indices."""
    best = np.full(num_objects, -1)
    best_hits = np.zeros(num_objects, int)
    for b, pixels in enumerate(segments):
        labels = instance[pixels]
        labels = labels[(labels != NO_OBJECT) & (labels >= 0) & (labels < num_objects)]
        if labels.size == 0:
            continue
        counts = np.bincount(labels, minlength=num_objects)
        a = int(counts.argmax())
        if counts[a] > best_hits[a]:
            best[a], best_hits[a] = b, counts[a]
    return best


class PerceivedObserver:
    """The robot's view of a simulated scene (module docstring); one per worker (the backend
    holds no state between frames, so shards stay deterministic)."""

    def __init__(self, params: PerceptionParams, noise: NoiseModel):
        params.validate()
        self.params, self.noise = params, noise
        self.segmenter = SEGMENTERS.make(params.backend, min_points=params.min_points)

    def observe(self, backend, camera: Camera, rng: np.random.Generator, points_per_segment: int) -> Observation:
        """The backend's scene as the robot's perception reports it: rows follow the simulator's
        segments (as :func:`f2p_sim.observation.observe`'s), ``counts`` 0 for an object without
        a segment of its own."""
        cloud = camera_cloud(backend, camera, organized=True, noise=self.noise, rng=rng)
        pos, quat = camera.optical_pose()
        frame, objects = perceive(self.segmenter, SensorFrame(cloud, camera_pose=(*pos, *quat)),
                                  self.params.depth_median, self.params.max_object_points)
        segments = [i[i >= 0] for i in point_indices(frame.cloud.points, [o.points for o in objects])]
        n = len(backend.segments)
        best = owners(cloud.instance, segments, n)
        chosen = [a for a in range(n) if best[a] >= 0]
        if chosen:
            pts = np.concatenate([objects[best[a]].points for a in chosen]).astype(np.float32)
            segs = np.concatenate([np.full(len(objects[best[a]].points), a, np.int32) for a in chosen])
        else:
            pts, segs = np.zeros((0, 3), np.float32), np.zeros(0, np.int32)
        fixed, counts = resample_fixed(pts, segs, n, points_per_segment)
        return Observation(points=fixed, counts=counts, raw_points=pts, raw_segments=segs, camera=camera.name)
