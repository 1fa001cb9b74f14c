"""``sim_robot`` lifecycle node: the MuJoCo world behind the interfaces of a robot's drivers.

=====================  ===============================  =========================================
interface              type                             what
=====================  ===============================  =========================================
pub ``camera/points``  sensor_msgs/PointCloud2          the depth camera, every 1/``rate_hz`` s:
                                                        x y z rgb + per-point ``instance`` and
                                                        ``label`` (a perfectly segmenting camera),
                                                        frame ``frame_id``, reliable, depth 10
pub ``camera/color/image_raw``, ``camera/depth/image_rect_raw``  sensor_msgs/Image: rgb8 and
                       32FC1 (m), every 1/``image_rate_hz`` s where a GL backend exists
pub ``camera/color/camera_info``, ``camera/depth/camera_info``  sensor_msgs/CameraInfo of them
pub ``camera/pose``    geometry_msgs/PoseStamped        the camera's optical frame in ``frame_id``
                                                        (latched); also on ``/tf_static``
                                                        (``base_frame`` -> ``camera_frame_id``)
pub ``gripper/pose``   geometry_msgs/PoseStamped        the gripper, with every camera frame
pub ``/clock``         rosgraph_msgs/Clock              simulated time (for ``use_sim_time``);
                                                        header stamps are in it only with
                                                        ``stamp_with_sim_time``, else the
                                                        system clock's (one time base)
pub ``/diagnostics``   diagnostic_msgs/DiagnosticArray  scene, frames published and skipped, time
srv ``reset_scene``    f2p_interfaces/ResetScene        load a task instance or a scene file
act ``execute_skill``  f2p_interfaces/ExecuteSkill      one skill through physics; feedback per
                                                        phase; cancel stops the motion; a target
                                                        id of perception's own is found by its
                                                        box (``target_boxes``)
=====================  ===============================  =========================================

Names are the ones a robot driver uses and remap as usual. Lifecycle: configure loads the world
(parameters ``world_config``, ``camera``, the initial ``task`` / ``objects`` / ``seed``) and
creates the publishers; activate starts the camera; deactivate stops it; cleanup frees the
world. The service and the action answer only while active. Images are rendered on their
own thread (a GL context belongs to one thread); without a GL backend (MUJOCO_GL=egl or
osmesa) the node says so on ``/diagnostics`` and publishes clouds only. One skill runs at a time (a second
goal is rejected); while a skill or a reset runs, the camera skips its frames (MuJoCo is not
thread-safe), which ``/diagnostics`` counts. The skill runs in its own callback group, so
cancel requests and the camera are served meanwhile. ``ExecuteSkill``'s predicted relations
are not used here: comparing them with the outcome is the task executor's job.

Controller: ``controller: scripted`` runs the primitives (the pad's grasp always holds);
``controller: afil`` runs the skills the AFIL checkpoint was trained for with the learned
controller (``f2p_afil``) in small steps through ``f2p_sim.control``, feedback per chunk
("chunk k"); a grasp holds only where the jaws close on the object, so the skill can fail as a
real one does (the result message says how). A cancel stops it between chunks: the jaws open
where they are and the gripper parks.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.action import GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from f2p_afil.checkpoint import controller_path, load_controller
from f2p_afil.controller import AfilController
from f2p_afil.policy import Guidance
from f2p_interfaces.action import ExecuteSkill
from f2p_skill_effect.checkpoint import CheckpointError
from f2p_interfaces.srv import ResetScene
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, box_from_msg, camera_cloud_to_msg, camera_info_to_msg, image_to_msg,
                                 ns_to_stamp, reset_response, skill_call_from_msg)
from f2p_ros.nodes import NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node
from f2p_ros.tf import TransformPublisher
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_sim.observation import NoiseModel
from f2p_sim.robot import SimRobot, SimRobotError, UnknownTargetError
from f2p_sim.skills import SkillMonitor
from f2p_sim.tasks import TASK_KINDS

def _noise_triple(v) -> str | None:
    try:
        NoiseModel(*v)
    except (TypeError, ValueError) as exc:
        return f"must be [depth_std, point_std, dropout]: {exc}"
    return None


PARAMS = [
    P.Param("world_config", "", "simulated world YAML ('' = the installed f2p_sim world.yaml)"),
    P.Param("layout", "", "task-scene layout of the world config: paper (paper 000's 0.5 m tables) or real_scale "
                          "(real furniture and object sizes); '' = the file's own", P.one_of("", *LAYOUTS)),
    P.Param("camera", "front", "camera preset of the world config"),
    P.Param("rate_hz", 5.0, "camera frames per second", P.positive),
    P.Param("organized", False, "publish every pixel as an organised height x width cloud (NaN: no return) "
                                "instead of the camera's foveated returns"),
    P.Param("stamp_with_sim_time", False, "stamp messages with physics time (the graph runs on use_sim_time and "
            "follows /clock); false: with the system clock when each frame is taken, as a robot's drivers do "
            "(f2p-bringup and the launch files set it from the graph's use_sim_time)"),
    P.Param("frame_id", "base_link", "frame of the cloud and poses: the robot's base frame (REP-103)"),
    P.Param("camera_frame_id", "camera_color_optical_frame", "frame of the images: the camera's optical frame"),
    P.Param("sensor_noise", [0.0, 0.0, 0.0], "the camera's depth noise: [depth_std (m), point_std (m), dropout "
                                             "(probability of no return)] on the cloud and the depth image, as a "
                                             "structured-light sensor has it; all 0 = the world config's noise",
            _noise_triple),
    P.Param("image_rate_hz", 2.0, "RGB and depth images per second where a GL backend exists (0: none)",
            P.positive_or_zero),
    P.Param("task", "transport", "task of the initial scene", P.one_of(*TASK_KINDS)),
    P.Param("objects", 3, "movable objects of the initial scene", P.one_of(3, 5, 7)),
    P.Param("seed", 1000, "seed of the initial scene (and of the execution noise)", P.positive_or_zero),
    P.Param("execution_noise", 0.0, "probability that a pick_place or push slips as a real controller does (a grasp "
                                    "that never closes, lands beside the object or loses it; a push that grazes "
                                    "past); 0 = the idealised controller",
            P.probability),
    P.Param("controller", "scripted", "who executes ExecuteSkill: scripted (the primitives, idealised grasp) or afil "
                                      "(the learned failure-aware controller, step-wise physics: a grasp holds only "
                                      "where the jaws close on the object)", P.one_of("scripted", "afil")),
    P.Param("afil_checkpoint", "", "AFIL controller checkpoint ('' = the one installed with f2p_afil)"),
    P.Param("afil_guidance", "adaptive", "AFIL sampling: none (success generator only), static or adaptive "
                                         "failure-informed guidance (paper 003 eqs. 7-8)",
            P.one_of("none", "static", "adaptive")),
    P.Param("afil_guidance_scale", 1.0, "AFIL guidance scale lambda", P.positive_or_zero),
]


class _GoalMonitor(SkillMonitor):
    """Feedback per motion phase, and cancel requests as a stop."""

    def __init__(self, goal_handle):
        self.goal_handle = goal_handle

    def phase(self, name: str, fraction: float) -> None:
        self.goal_handle.publish_feedback(ExecuteSkill.Feedback(phase=name, progress=float(fraction)))

    def stop_requested(self) -> bool:
        return self.goal_handle.is_cancel_requested


class SimRobotNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("sim_robot", **kwargs)
        P.declare(self, PARAMS)
        self.robot: SimRobot | None = None
        self._skill = threading.Lock()           # one skill at a time
        self._points = self._pose = self._clock_pub = self._diag = None
        self._images = {}
        self._stop_images = threading.Event()
        self.images_published, self.image_problem = 0, ""
        self.frames_published = self.frames_skipped = 0
        self._camera_group = MutuallyExclusiveCallbackGroup()
        # The service and the action server exist from the start (created while the executor
        # spins, an action server races it: support/ros.py) and answer only while active.
        self.create_guarded_service(ResetScene, "reset_scene", self._on_reset)
        self.create_guarded_action_server(ExecuteSkill, "execute_skill", self._execute, self._on_goal,
                                          callback_group=ReentrantCallbackGroup())

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            world = load_world_config(v["world_config"] or None, v["layout"] or None)
            controller, skills = None, ()
            if v["controller"] == "afil":
                policy, ckpt = load_controller(controller_path(v["afil_checkpoint"]))
                controller = AfilController(policy, Guidance(v["afil_guidance"], float(v["afil_guidance_scale"])),
                                            seed=int(v["seed"]))
                skills = tuple(ckpt.training.get("skills", ()))
                self.get_logger().info(f"AFIL controller {ckpt.version} executes {', '.join(skills)} "
                                       f"({v['afil_guidance']} guidance, scale {v['afil_guidance_scale']})")
            self._sim_time_stamps = bool(v["stamp_with_sim_time"])
            self.robot = SimRobot(world, v["camera"], v["frame_id"], v["organized"], seed=int(v["seed"]),
                                  execution_noise=float(v["execution_noise"]), controller=controller,
                                  controlled_skills=skills,
                                  noise=NoiseModel(*v["sensor_noise"]) if any(v["sensor_noise"]) else None)
            info = self.robot.reset_task(v["task"], int(v["objects"]), int(v["seed"]))
        except (ValueError, OSError, CheckpointError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.robot = None
            return TransitionCallbackReturn.FAILURE
        self._rate = float(v["rate_hz"])
        sensor = qos.sensor()         # reliable, as a camera driver's default
        pub = NO_EVENT_HANDLERS["pub"]

        def publisher(msg_type, topic, profile):
            return self.until_cleanup(self.create_lifecycle_publisher(msg_type, topic, profile, event_callbacks=pub))
        self._points = publisher(PointCloud2, "camera/points", sensor)
        self._pose = publisher(PoseStamped, "gripper/pose", sensor)
        self._clock_pub = publisher(Clock, "/clock", 10)
        self._diag = self.create_diagnostics_publisher()
        self._image_rate, self._camera_frame = float(v["image_rate_hz"]), v["camera_frame_id"]
        if self._image_rate > 0:
            self._images = {name: publisher(kind, topic, sensor) for name, kind, topic in (
                ("rgb", Image, "camera/color/image_raw"), ("depth", Image, "camera/depth/image_rect_raw"),
                ("rgb_info", CameraInfo, "camera/color/camera_info"),
                ("depth_info", CameraInfo, "camera/depth/camera_info"))}
        latched = qos.latched()
        self._camera_pose_pub = publisher(PoseStamped, "camera/pose", latched)
        self._tf = TransformPublisher(self, lifecycle=True)
        for endpoint in self._tf.endpoints:
            self.until_cleanup(endpoint)
        self.get_logger().info(f"configured: {info.description}, objects {info.object_ids}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.until_deactivate(self.create_timer(1.0 / self._rate, self._publish_frame, callback_group=self._camera_group))
        self.until_deactivate(self.create_timer(1.0, self._publish_diagnostics, callback_group=self._camera_group))
        result = super().on_activate(state)
        self._publish_camera_pose()
        if self._images:                      # the image thread publishes: deactivate stops it first
            self._stop_images.clear()
            self.start_worker(self._render_images, "images", stop=self._stop_images.set, join_timeout=10.0)
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._points = self._pose = self._clock_pub = self._diag = self._camera_pose_pub = self._tf = None
        self._images = {}
        self.robot = None
        return super().on_cleanup(state)

    # --- camera, pose, clock -----------------------------------------------------------
    def _publish_frame(self) -> None:
        # Between skills the world rests and its clock runs at the camera's pace: every frame (and
        # /clock) gets a new stamp. During a skill the clock is physics'. The system clock is read
        # before the frame is taken: a frame never claims to be newer than it is.
        taken = time.time_ns()
        rested = self.robot.rest(1.0 / self._rate, blocking=False)
        cloud = self.robot.camera_cloud(blocking=False) if rested else None
        if cloud is None:                    # a skill or a reset holds the world: no frame now
            self.frames_skipped += 1
            return
        self._points.publish(camera_cloud_to_msg(replace(cloud, stamp_ns=self._stamp(cloud.stamp_ns, taken))))
        self.frames_published += 1
        self._publish_pose_and_clock()

    def _render_images(self) -> None:
        """The image thread: every GL call of this node happens here."""
        try:
            while not self._stop_images.wait(1.0 / self._image_rate):
                taken = time.time_ns()
                try:
                    frame = self.robot.render_images(blocking=False)
                except RuntimeError as exc:                      # no GL backend here
                    self.image_problem = str(exc)
                    self.get_logger().warning(f"no camera images: {exc}")
                    return
                if frame is None:                                # a skill or a reset holds the world
                    continue
                stamp, cam = self._stamp(frame["stamp_ns"], taken), self.robot.camera
                self._images["rgb"].publish(image_to_msg(frame["rgb"], self._camera_frame, stamp))
                self._images["depth"].publish(image_to_msg(frame["depth"], self._camera_frame, stamp))
                for name in ("rgb_info", "depth_info"):
                    self._images[name].publish(camera_info_to_msg(cam.width, cam.height, cam.ros_intrinsics,
                                                                  self._camera_frame, stamp))
                self.images_published += 1
        finally:
            self.robot.close_renderer()

    def _publish_camera_pose(self) -> None:
        pos, quat = self.robot.camera_pose()
        pose = PoseStamped()
        pose.header.frame_id, pose.header.stamp = self.robot.frame_id, ns_to_stamp(self._stamp(self.robot.time_ns()))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in pos)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quat)
        self._camera_pose_pub.publish(pose)
        self._tf.send_static([(self.robot.frame_id, self._camera_frame, np.concatenate([pos, quat]))])

    def _stamp(self, physics_ns: int, taken_ns: int | None = None) -> int:
        """A header stamp in the graph's time base: physics time with ``stamp_with_sim_time``, else
        the system clock when the data was taken (``taken_ns``; default now)."""
        if self._sim_time_stamps:
            return physics_ns
        return time.time_ns() if taken_ns is None else taken_ns

    def _publish_pose_and_clock(self) -> None:
        physics = self.robot.time_ns()
        pos, quat = self.robot.gripper_pose()
        pose = PoseStamped()
        pose.header.frame_id, pose.header.stamp = self.robot.frame_id, ns_to_stamp(self._stamp(physics))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in pos)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quat)
        self._pose.publish(pose)
        self._clock_pub.publish(Clock(clock=ns_to_stamp(physics)))

    def _publish_diagnostics(self) -> None:
        busy = self._skill.locked()
        self._diag.publish(diagnostics(
            self, "world", WARN if busy else OK, "running a skill" if busy else "idle",
            scene=self.robot.scene.description, objects=" ".join(self.robot.scene.object_ids),
            frames_published=self.frames_published, frames_skipped=self.frames_skipped,
            images_published=self.images_published, images=self.image_problem or ("on" if self._images else "off"),
            sim_time_s=f"{self.robot.time_ns() / 1e9:.3f}"))

    # --- reset -------------------------------------------------------------------------
    def _on_reset(self, req: ResetScene.Request, resp: ResetScene.Response) -> ResetScene.Response:
        if not self.is_active:
            resp.success, resp.message = False, "sim_robot is not active (configure and activate it first)"
            return resp
        if not self._skill.acquire(blocking=False):
            resp.success, resp.message = False, "a skill is running; reset after it ends (or cancel it)"
            return resp
        try:
            info = (self.robot.reset_scene_file(req.scene_file) if req.scene_file
                    else self.robot.reset_task(req.task, int(req.n_objects), int(req.seed)))
        except SimRobotError as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        finally:
            self._skill.release()
        reset_response(resp, info.description, info.object_ids, info.labels, info.goal, info.boxes,
                       self._stamp(self.robot.time_ns()))
        self._publish_pose_and_clock()
        return resp

    # --- skills ------------------------------------------------------------------------
    def _on_goal(self, goal) -> GoalResponse:
        if not self.is_active or self._skill.locked():
            self.get_logger().warning("rejected an execute_skill goal: " +
                                      ("not active" if not self.is_active else "a skill is already running"))
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle) -> ExecuteSkill.Result:
        result, codes = ExecuteSkill.Result(), ExecuteSkill.Result
        if not self._skill.acquire(blocking=False):
            goal_handle.abort()
            result.error_code, result.message = codes.ERROR_NOT_READY, "a skill is already running"
            return result
        frame = goal_handle.request.header.frame_id
        try:
            if frame and frame != self.robot.frame_id:
                raise ConversionError(f"the goal is in frame {frame!r}; this robot's boxes and parameters are in "
                                      f"{self.robot.frame_id!r}")
            call = skill_call_from_msg(goal_handle.request.skill)
            if len(goal_handle.request.target_boxes) > len(call.target_ids):
                raise ConversionError(f"{len(goal_handle.request.target_boxes)} target boxes for "
                                      f"{len(call.target_ids)} target(s): at most one box per target")
            boxes = [box_from_msg(b) for b in goal_handle.request.target_boxes]
            outcome = self.robot.execute(call, _GoalMonitor(goal_handle), target_boxes=boxes)
        except (ConversionError, SimRobotError) as exc:
            goal_handle.abort()
            result.error_code = codes.ERROR_UNKNOWN_TARGET if isinstance(exc, UnknownTargetError) else \
                codes.ERROR_INVALID_GOAL
            result.message = f"refused: {exc}"
            return result
        finally:
            self._skill.release()
        report = outcome.report
        result.finished = ns_to_stamp(self._stamp(outcome.observation.stamp_ns))
        self._publish_pose_and_clock()
        if report.stopped and goal_handle.is_cancel_requested:
            goal_handle.canceled()
            result.error_code, result.message = codes.ERROR_CANCELLED, f"cancelled: {report.message}"
        elif not report.executed:
            goal_handle.abort()
            result.error_code, result.message = codes.ERROR_EXECUTION_FAILED, f"not executed: {report.message}"
        else:
            goal_handle.succeed()
            result.success = True
            result.message = (f"{call.skill} on {call.target_ids[0]} done in {report.steps} physics steps; moved "
                              f"{[outcome.observation.object_ids[i] for i in report.moved]}"
                              + (f"; warnings: {report.flags}" if report.flags else "")
                              + (f"; {report.message}" if report.message else "")
                              + (f"; execution noise: {outcome.slip}" if outcome.slip else ""))
        return result


def main(args=None) -> None:
    run_node(SimRobotNode, args)


if __name__ == "__main__":
    main()
