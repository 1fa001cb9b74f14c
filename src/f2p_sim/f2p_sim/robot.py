"""The simulated robot: the MuJoCo world as a robot's camera driver and skill server present it.

ROS-free; ``sim_robot_node`` adapts it to topics, a service and an action. Objects are named as
a segmenting camera's perception names them (``instance_object_id``: ``<class>_<segment>``),
so the task goals it hands out, the skill calls it executes and the scenes perception builds
from its camera all use the same ids. Frames: the world frame is the robot's base frame
(REP-103: x forward, y left, z up, metres).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from f2p_afil.controller import ControlMonitor
from f2p_common.interfaces import (CameraCloud, OrientedBox, RelationState, SegmentedObject, SegmentedScene, SkillCall,
                                   instance_object_id)
from f2p_common.vocabulary import MOVABLE_CLASSES
from f2p_sim.control import ControlConfig, execute_controlled
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, ImageRenderer, NoiseModel, camera_cloud, observe
from f2p_sim.scene import SceneError, SceneSpec
from f2p_sim.skills import SLIP_KINDS, ExecutionPerturbation, SkillError, SkillMonitor, SkillReport, make_slip
from f2p_sim.tasks import Literal, make_task

#: How far (m) a perceived target's box centre may lie from the body it means (a partial view's
#: box centre is off by up to half the hidden depth).
MAX_TARGET_OFFSET = 0.1

#: The largest scene file ``reset_scene_file`` reads (bytes): a scene of the catalogue's sizes
#: is a few kB.
MAX_SCENE_FILE_BYTES = 1 << 20

#: (predicate, subject id, object id or None) over the robot's object ids.
IdLiteral = tuple


class SimRobotError(ValueError):
    """A request the simulated robot refuses (unknown object, bad scene, bad skill); says why."""


class UnknownTargetError(SimRobotError):
    """A skill's target is no object of the scene (neither its id nor its box matches one)."""


@dataclass
class SceneInfo:
    """The loaded scene: object ids and classes (instance order) and the task's goal, if any."""

    object_ids: list[str]
    labels: list[str]
    goal: list[IdLiteral] = field(default_factory=list)
    description: str = ""
    boxes: list[OrientedBox] = field(default_factory=list)     # true world AABBs, after settling


@dataclass
class SkillOutcome:
    """A skill's report and what the world looks like after it: the camera's segmented scene
    (perfect segmentation) and the simulator's relations."""

    report: SkillReport
    observation: SegmentedScene
    relations: RelationState
    #: The execution slip the noise model made in this skill ("" = none), in words.
    slip: str = ""


class _ChunkMonitor(ControlMonitor):
    """A step-wise controller's chunks as the SkillMonitor's phases ("chunk k"), cancel as a stop."""

    def __init__(self, monitor: SkillMonitor):
        self.monitor = monitor

    def chunk(self, index, obs, actions) -> None:
        done = (index + 1) * len(actions) / ControlConfig().steps_for(obs.skill)
        self.monitor.phase(f"chunk {index}", min(1.0, done))

    def stop_requested(self) -> bool:
        return self.monitor.stop_requested()


class SimRobot:
    """One simulated world; every method holds :attr:`lock` (MuJoCo is not thread-safe)."""

    def __init__(self, world: dict, camera: str = "front", frame_id: str = "base_link", organized: bool = False,
                 seed: int = 0, execution_noise: float = 0.0, controller=None, controlled_skills: tuple[str, ...] = (),
                 robot=None, noise: NoiseModel | None = None):
        """``execution_noise``: the probability that a pick_place or push slips as a physical
        controller does (``f2p_sim.skills.make_slip``: a grasp that never closes, lands beside the
        object or loses it on the way; a push that grazes past), drawn per skill from ``seed``.
        ``controller``: a step-wise skill controller (``f2p_afil.controller.AfilController``)
        that executes ``controlled_skills`` through :mod:`f2p_sim.control` (no idealised grasp);
        other skills, and every skill when None, run the scripted primitives. ``robot``: an arm
        added to every scene (``MujocoBackend``'s; ``f2p_sim.arm_world`` drives it). ``noise``: the
        camera's sensor noise (None: the world config's ``noise``)."""
        if not 0.0 <= execution_noise <= 1.0:
            raise SimRobotError(f"execution_noise must be a probability in [0, 1], got {execution_noise}")
        self.controller = controller
        self.controlled_skills = tuple(controlled_skills) if controller is not None else ()
        self.execution_noise = float(execution_noise)
        self.slip_rng = np.random.default_rng([seed, 7])
        self.backend = MujocoBackend(world, robot=robot)
        self.camera = Camera.from_config(world, camera)
        self.frame_id, self.organized = frame_id, organized
        self.noise = noise if noise is not None else NoiseModel.from_config(world)
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.scene = SceneInfo([], [])
        self._clock_offset_ns = 0          # simulated time before the current world's physics time
        self._renderer: ImageRenderer | None = None                 # made at the first render_images

    # ------------------------------------------------------------------ scenes
    def reset_task(self, kind: str, n_objects: int, seed: int) -> SceneInfo:
        """Load a task instance (f2p_sim.tasks; the same arguments give the same scene)."""
        try:
            task = make_task(kind, n_objects, seed, self.backend.cfg)
        except (ValueError, SceneError) as e:
            raise SimRobotError(str(e)) from None
        return self._load(task.scene, task.goal, f"{kind} with {n_objects} objects, seed {seed}")

    def reset_scene_file(self, path: str | Path) -> SceneInfo:
        """Load a scene JSON file: ``SceneSpec.to_dict()``'s form, optionally with ``goal``: a list
        of [predicate, subject name, object name or null]."""
        try:
            size = Path(path).stat().st_size
            if size > MAX_SCENE_FILE_BYTES:           # a request must not make the robot read a huge file
                raise ValueError(f"{size} bytes, more than the {MAX_SCENE_FILE_BYTES} a scene file may have")
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            scene = SceneSpec.from_dict(doc)
            goal = [Literal(g[0], g[1], g[2] if len(g) > 2 else None) for g in doc.get("goal", [])]
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise SimRobotError(f"cannot read scene file {path}: {e}") from None
        return self._load(scene, goal, f"scene file {path}")

    def _load(self, scene: SceneSpec, goal: list[Literal], description: str) -> SceneInfo:
        with self.lock:
            before = self._time_ns()
            try:
                self.backend.load(scene)
            except (SceneError, ValueError) as e:
                raise SimRobotError(f"cannot build the scene: {e}") from None
            segs = self.backend.segments
            ids = [instance_object_id(s.cls, i) for i, s in enumerate(segs)]
            by_name = {s.name: ids[i] for i, s in enumerate(segs)}
            try:
                id_goal = [(g.predicate, by_name[g.subject], None if g.object is None else by_name[g.object]) for g in goal]
            except KeyError as e:
                raise SimRobotError(f"the goal names {e}, which is not an object of the scene") from None
            st = self.backend.segment_state()
            boxes = [OrientedBox(0.5 * (lo + hi), np.array([0.0, 0.0, 0.0, 1.0]), hi - lo)
                     for lo, hi in zip(st.box_lower, st.box_upper)]
            self.scene = SceneInfo(ids, [s.cls for s in segs], id_goal, description, boxes)
            # the clock goes on, a millisecond past the last frame of the old scene: every frame
            # stamped at or after the new scene's time (ResetScene's stamp) shows the new scene
            self._clock_offset_ns = before + 1_000_000 - int(round(self.backend.time * 1e9))
            return self.scene

    def _require_scene(self) -> None:
        if not self.scene.object_ids:
            raise SimRobotError("no scene is loaded: reset the world to a task or a scene file first")

    # ------------------------------------------------------------------ sensing
    def camera_cloud(self, blocking: bool = True) -> CameraCloud | None:
        """The camera's current cloud, stamped with the simulated time; None without waiting when
        ``blocking`` is False and the world is busy (a skill or a reset is running)."""
        if not self.lock.acquire(blocking=blocking):
            return None
        try:
            self._require_scene()
            return camera_cloud(self.backend, self.camera, organized=self.organized, noise=self.noise, rng=self.rng,
                                frame_id=self.frame_id, stamp_ns=self._time_ns())
        finally:
            self.lock.release()

    def time_ns(self) -> int:
        """The simulated clock (ns): physics time, plus the time the world rested (:meth:`rest`),
        continuing across resets: it never goes back, as /clock must not."""
        with self.lock:
            return self._time_ns()

    def _time_ns(self) -> int:
        return self._clock_offset_ns + (int(round(self.backend.time * 1e9)) if self.scene.object_ids else 0)

    def rest(self, seconds: float, blocking: bool = True) -> bool:
        """Let ``seconds`` of simulated time pass with nothing moving (the world is at rest between
        skills, so physics need not step: the clock advances). False without waiting when
        ``blocking`` is False and the world is busy."""
        if seconds < 0:
            raise ValueError(f"cannot rest a negative time ({seconds} s)")
        if not self.lock.acquire(blocking=blocking):
            return False
        try:
            self._clock_offset_ns += int(round(seconds * 1e9))
            return True
        finally:
            self.lock.release()

    def render_images(self, blocking: bool = True) -> dict | None:
        """The camera's ``rgb`` (H, W, 3) uint8 and ``depth`` (H, W) float32 m images (with the
        world's sensor noise, NaN for no return) and their ``stamp_ns`` (observation.ImageRenderer);
        None without waiting when ``blocking`` is False and the world is busy. RuntimeError when
        no GL backend exists."""
        if not self.lock.acquire(blocking=blocking):
            return None
        try:
            self._require_scene()
            if self._renderer is None or self._renderer.model is not self.backend.model:
                if self._renderer is not None:               # a reset built a new model
                    self._renderer.close()
                self._renderer = ImageRenderer(self.backend, self.camera)
            images = self._renderer.render()
            images["depth"] = self.noise.depth_image(images["depth"], self.rng)       # the world's sensor noise
            return {**images, "stamp_ns": self._time_ns()}
        finally:
            self.lock.release()

    def close_renderer(self) -> None:
        """Free the renderer's GL context (from the thread that rendered: GL contexts are per thread)."""
        with self.lock:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The camera's optical frame in the robot's frame (:meth:`Camera.optical_pose`)."""
        return self.camera.optical_pose()

    def gripper_pose(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            self._require_scene()
            return self.backend.gripper_pose()

    def observation(self) -> SegmentedScene:
        """The camera's view as a perfectly segmented scene (objects the camera does not see get
        no points), in the robot's frame."""
        with self.lock:
            self._require_scene()
            return self._observation()

    def relations(self) -> RelationState:
        """The simulator's ground-truth relations (paper 000 A.9) of the current state."""
        with self.lock:
            self._require_scene()
            return self._relations()

    def _observation(self) -> SegmentedScene:
        obs = observe(self.backend, self.camera, noise=self.noise, rng=self.rng)
        objects = []
        for i, (oid, label) in enumerate(zip(self.scene.object_ids, self.scene.labels)):
            pts = obs.segment_cloud(i)
            objects.append(SegmentedObject(oid, label, pts, box=OrientedBox.around(pts) if len(pts) else None))
        return SegmentedScene(objects, self.frame_id, self._time_ns(), "sim:mujoco")

    def _relations(self) -> RelationState:
        rel = self.backend.relations()
        return RelationState.from_arrays(self.scene.object_ids, rel.unary, rel.binary, self.frame_id, self._time_ns())

    # ------------------------------------------------------------------ skills
    def _body_at(self, target: str, box: OrientedBox) -> int:
        """The movable segment nearest ``box``'s centre (execute's docstring); SimRobotError when none is near."""
        st = self.backend.segment_state()
        centres = 0.5 * (np.asarray(st.box_lower) + np.asarray(st.box_upper))
        movable = [i for i, c in enumerate(self.scene.labels) if c in MOVABLE_CLASSES]
        if not movable:
            raise UnknownTargetError(f"target {target!r}: the scene has no movable object")
        dist = np.linalg.norm(centres[movable] - np.asarray(box.center, float), axis=1)
        if dist.min() > MAX_TARGET_OFFSET:
            raise UnknownTargetError(f"target {target!r}: no object of the scene within {MAX_TARGET_OFFSET} m of its box "
                                f"centre {np.round(box.center, 3).tolist()} (nearest {dist.min():.3f} m)")
        return movable[int(np.argmin(dist))]

    def execute(self, call: SkillCall, monitor: SkillMonitor | None = None,
                target_boxes: list[OrientedBox] | None = None) -> SkillOutcome:
        """Run ``call`` through physics; SimRobotError for an unknown target or a refused request.
        A target id that is not one of the scene's (a perception backend's own id) is the
        movable body whose box centre is nearest its box in ``target_boxes`` (within
        :data:`MAX_TARGET_OFFSET` m), as a real skill server acts on where the object is."""
        with self.lock:
            self._require_scene()
            target = call.target_ids[0]
            if target in self.scene.object_ids:
                index = self.scene.object_ids.index(target)
            elif target_boxes:
                index = self._body_at(target, target_boxes[0])
            else:
                raise UnknownTargetError(f"unknown object id {target!r}; the scene has {self.scene.object_ids}")
            if call.skill in self.controlled_skills:
                try:
                    report, _ = execute_controlled(self.backend, call.skill, index, call.parameters, self.controller,
                                                   _ChunkMonitor(monitor or SkillMonitor()),
                                                   rng=self.rng)
                except SkillError as e:
                    raise SimRobotError(str(e)) from None
                return SkillOutcome(report, self._observation(), self._relations(), "")
            perturbation, slip = self._slip(call, index)
            try:
                report = self.backend.execute_skill(call.skill, index, call.parameters, monitor=monitor,
                                                    perturbation=perturbation)
            except SkillError as e:
                raise SimRobotError(str(e)) from None
            return SkillOutcome(report, self._observation(), self._relations(), slip)

    def _slip(self, call: SkillCall, index: int) -> tuple[ExecutionPerturbation | None, str]:
        """The execution noise's slip for this skill, if it makes one (the constructor's docstring)."""
        if self.execution_noise <= 0.0 or call.skill not in ("pick_place", "push") \
                or self.slip_rng.random() >= self.execution_noise:
            return None, ""
        kinds = SLIP_KINDS if call.skill == "pick_place" else ("miss",)
        st = self.backend.segment_state()
        half = 0.5 * (st.box_upper[index, :2] - st.box_lower[index, :2])
        return make_slip(kinds[int(self.slip_rng.integers(len(kinds)))], self.slip_rng, call.skill, call.parameters,
                         half)
