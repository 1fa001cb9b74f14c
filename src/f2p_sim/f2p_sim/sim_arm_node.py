"""``sim_arm`` lifecycle node: the simulated UR5e cell behind the interfaces of UR's ROS 2 driver
and the Robotiq gripper driver (``f2p_sim.arm_world`` without ROS).

===============================================================  =====================================
interface                                                        what
===============================================================  =====================================
act ``/scaled_joint_trajectory_controller/follow_joint_trajectory``  control_msgs/FollowJointTrajectory:
                                                                 UR's joint names, limits, path and
                                                                 goal tolerances, error codes; a new
                                                                 goal preempts the running one;
                                                                 cancel holds where the arm is
act ``/robotiq_gripper_controller/gripper_cmd``                  control_msgs/GripperCommand: the
                                                                 knuckle (0 open .. 0.8 rad closed)
pub ``/joint_states``                                            sensor_msgs/JointState, every
                                                                 1/``joint_state_rate_hz`` s
pub ``/tf``, ``/tf_static``                                      ``world`` -> ``base_link`` ->
                                                                 ``camera_color_optical_frame`` and
                                                                 ``world`` -> ``arm_pedestal`` (its
                                                                 foot), static; UR's links
                                                                 ``base_link`` -> ``base``,
                                                                 ``shoulder_link`` .. ``tool0`` as
                                                                 robot_state_publisher gives them
                                                                 (ur_description's chain)
pub ``camera/points``                                            sensor_msgs/PointCloud2 in
                                                                 ``camera_color_optical_frame``
                                                                 (xyz; instance/label fields only
                                                                 with ``segmenting``)
pub ``/speed_scaling_state_broadcaster/speed_scaling``           std_msgs/Float64 (the speed slider)
pub ``robot_stopped``                                            std_msgs/Bool, latched: protective stop
pub ``/clock``                                                   rosgraph_msgs/Clock: simulated time
srv ``/dashboard_client/unlock_protective_stop``                 std_srvs/Trigger
srv ``reset_scene``                                              f2p_interfaces/ResetScene (boxes in
                                                                 ``world``, the floor under the
                                                                 arm: the ur5 graph's base_frame)
===============================================================  =====================================

The world steps in a control thread at ``control_rate_hz``, paced to ``real_time_factor``
times the wall clock. Lifecycle: configure loads the world, activate starts the control loop and
the publishers, deactivate stops them. The real robot's ``safety_mode`` comes as
``ur_dashboard_msgs``; a robot bring-up bridges it to ``robot_stopped`` (README).
"""
from __future__ import annotations

import threading
import time

import numpy as np
from control_msgs.action import FollowJointTrajectory, GripperCommand
from rclpy.action import GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState, PointCloud2
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

from f2p_common.frames import compose, invert, quat_rotate
from f2p_common.interfaces import CameraCloud
from f2p_interfaces.srv import ResetScene
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, camera_cloud_to_msg, joint_state_to_msg, joint_trajectory_from_msg,
                                 joint_trajectory_to_msg, ns_to_stamp, reset_response)
from f2p_ros.nodes import NO_EVENT_HANDLERS, OK, WARN, ManagedNode, diagnostics, run_node
from f2p_ros.tf import TransformPublisher
from f2p_sim.arm_model import UR5E_JOINTS, UR5E_URDF_CHAIN, ArmMount, Ur5eRig, ur5e_link_frames
from f2p_sim.arm_world import ArmWorld, TrajectoryRejected
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_sim.robot import SimRobotError
from f2p_sim.tasks import TASK_KINDS

CAMERA_FRAME = "camera_color_optical_frame"
#: The links a joint moves (on /tf); the others of the chain are fixed (on /tf_static).
_MOVING_LINKS = tuple(link for link, _parent, _xyz, _rpy, joint in UR5E_URDF_CHAIN if joint is not None)

PARAMS = [
    P.Param("stamp_with_sim_time", True, "stamp messages with physics time (the graph runs on use_sim_time and "
            "follows /clock); false: with the system clock when each frame is taken, as a robot's drivers do "
            "(f2p-bringup and the launch files set it from the graph's use_sim_time)"),
    P.Param("world_config", "", "simulated world YAML ('' = the installed f2p_sim world.yaml)"),
    P.Param("layout", "", "task-scene layout ('' = the file's own)", P.one_of("", *LAYOUTS)),
    P.Param("camera", "front", "camera preset of the world config (fixed in the cell)"),
    P.Param("mount", [0.15, 0.0, 0.45], "base_link's position in the world [x, y, z] (m), on a pedestal",
            P.vector3),
    P.Param("task", "transport", "task of the initial scene", P.one_of(*TASK_KINDS)),
    P.Param("objects", 3, "movable objects of the initial scene", P.one_of(3, 5, 7)),
    P.Param("seed", 1000, "seed of the initial scene", P.positive_or_zero),
    P.Param("control_rate_hz", 250.0, "control loop rate (Hz)", P.positive),
    P.Param("real_time_factor", 1.0, "simulated seconds per wall second", P.positive),
    P.Param("joint_state_rate_hz", 50.0, "joint states per second", P.positive),
    P.Param("rate_hz", 5.0, "camera clouds per second", P.positive),
    P.Param("segmenting", False, "add the simulator's instance/label fields to the cloud (a perfectly "
                                 "segmenting camera); false: a plain depth camera, as on the robot"),
    P.Param("speed_scaling", 1.0, "UR's speed slider (0..1): trajectory time runs at this rate",
            P.in_range(0.0, 1.0), live=True),
    P.Param("protective_stop_n", 150.0, "contact force (N) of the arm that triggers a protective stop", P.positive),
    P.Param("controller_action", "/scaled_joint_trajectory_controller/follow_joint_trajectory",
            "the trajectory controller's action"),
    P.Param("gripper_action", "/robotiq_gripper_controller/gripper_cmd", "the gripper's action"),
]


class SimArmNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("sim_arm", **kwargs)
        P.declare(self, PARAMS)
        self.world: ArmWorld | None = None
        self._goal_serial = 0
        self._serial_lock = threading.Lock()
        self._stop = threading.Event()
        self.frames_published = 0
        self._publish_group = MutuallyExclusiveCallbackGroup()
        v = P.load(self, PARAMS)
        calls = ReentrantCallbackGroup()
        self.create_guarded_action_server(FollowJointTrajectory, v["controller_action"], self._follow,
                                          self._on_goal, callback_group=calls)
        self.create_guarded_action_server(GripperCommand, v["gripper_action"], self._grip, self._on_goal,
                                          callback_group=calls)
        self.create_guarded_service(Trigger, "/dashboard_client/unlock_protective_stop", self._on_unlock)
        self.create_guarded_service(ResetScene, "reset_scene", self._on_reset)

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = self.v = P.load(self, PARAMS)
            world = load_world_config(v["world_config"] or None, v["layout"] or None)
            self.world = ArmWorld(world, Ur5eRig(ArmMount(tuple(v["mount"]))), v["camera"], int(v["seed"]),
                                  float(v["protective_stop_n"]))
            info = self.world.reset_task(v["task"], int(v["objects"]), int(v["seed"]))
        except (ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.world = None
            return TransitionCallbackReturn.FAILURE
        pub = NO_EVENT_HANDLERS["pub"]

        def publisher(msg_type, topic, profile):
            return self.until_cleanup(self.create_lifecycle_publisher(msg_type, topic, profile, event_callbacks=pub))
        self._joints_pub = publisher(JointState, "/joint_states", qos.sensor())
        self._points = publisher(PointCloud2, "camera/points", qos.sensor())
        self._scaling = publisher(Float64, "/speed_scaling_state_broadcaster/speed_scaling", qos.sensor())
        self._stopped_pub = publisher(Bool, "robot_stopped", qos.latched())
        self._clock_pub = publisher(Clock, "/clock", 10)
        self._tf = TransformPublisher(self, lifecycle=True)
        for endpoint in self._tf.endpoints:
            self.until_cleanup(endpoint)
        self._diag = self.create_diagnostics_publisher()
        self.get_logger().info(f"configured: {info.description}, objects {info.object_ids}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self._publish_static()
        self._stop.clear()
        self.start_worker(self._control_loop, "control", stop=self._stop.set, join_timeout=5.0)
        g = self._publish_group
        self.until_deactivate(self.create_timer(1.0 / self.v["joint_state_rate_hz"], self._publish_state,
                                                callback_group=g))
        self.until_deactivate(self.create_timer(1.0 / self.v["rate_hz"], self._publish_cloud, callback_group=g))
        self.until_deactivate(self.create_timer(1.0, self._publish_diagnostics, callback_group=g))
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.world = None
        return super().on_cleanup(state)

    # --- the world's clock -----------------------------------------------------------------
    def _control_loop(self) -> None:
        period = 1.0 / self.v["control_rate_hz"]
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.world.speed_scaling = float(self.get_parameter("speed_scaling").value)
            self.world.step(period * self.v["real_time_factor"])
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_tick = time.monotonic()            # behind: do not try to catch up

    def _base(self) -> np.ndarray:
        return self.world.body_pose("base_link")

    def _publish_static(self) -> None:
        base = self._base()
        pos, quat = self.world.sim.camera_pose()
        camera = np.concatenate([pos, quat])
        fixed = [(parent, link, pose) for link, (parent, pose) in ur5e_link_frames(np.zeros(6)).items()
                 if link not in _MOVING_LINKS]
        self._tf.send_static([("world", "base_link", base), ("world", "arm_pedestal", [*base[:2], 0, 0, 0, 0, 1]),
                              ("base_link", CAMERA_FRAME, compose(invert(base), camera)), *fixed])

    def _publish_state(self) -> None:
        physics = self.world.time_ns()
        stamp = physics if self.v["stamp_with_sim_time"] else time.time_ns()
        names, q, v, e = self.world.joint_state()
        self._joints_pub.publish(joint_state_to_msg(names, q, v, e, stamp))
        angles = dict(zip(names, q))
        links = ur5e_link_frames([angles[j] for j in UR5E_JOINTS])
        self._tf.send([(links[link][0], link, links[link][1], stamp) for link in _MOVING_LINKS])
        self._scaling.publish(Float64(data=self.world.speed_scaling))
        self._stopped_pub.publish(Bool(data=self.world.protective_stopped))
        self._clock_pub.publish(Clock(clock=ns_to_stamp(physics)))

    def _publish_cloud(self) -> None:
        taken = time.time_ns()
        cloud = self.world.sim.camera_cloud(blocking=False)
        if cloud is None:
            return
        pos, quat = self.world.sim.camera_pose()
        inv = invert(np.concatenate([pos, quat]))
        pts = quat_rotate(inv[3:], cloud.points.astype(np.float64)) + inv[:3]
        keep = self.v["segmenting"]
        out = CameraCloud(pts.astype(np.float32), cloud.colors, cloud.instance if keep else None,
                          cloud.label if keep else None, CAMERA_FRAME,
                          cloud.stamp_ns if self.v["stamp_with_sim_time"] else taken, cloud.height)
        self._points.publish(camera_cloud_to_msg(out))
        self.frames_published += 1

    def _publish_diagnostics(self) -> None:
        w = self.world
        self._diag.publish(diagnostics(
            self, "arm", WARN if w.protective_stopped else OK,
            f"protective stop: {w.stop_reason}" if w.protective_stopped else "running",
            speed_scaling=w.speed_scaling, frames_published=self.frames_published,
            sim_time_s=f"{w.time_ns() / 1e9:.3f}"))

    # --- services -------------------------------------------------------------------------------
    def _on_unlock(self, _req, resp: Trigger.Response) -> Trigger.Response:
        if self.world is None:
            resp.success, resp.message = False, "sim_arm is not configured"
            return resp
        was = self.world.unlock_protective_stop()
        resp.success, resp.message = True, "protective stop unlocked" if was else "was not protectively stopped"
        return resp

    def _on_reset(self, req: ResetScene.Request, resp: ResetScene.Response) -> ResetScene.Response:
        if not self.is_active:
            resp.success, resp.message = False, "sim_arm is not active"
            return resp
        try:
            info = self.world.reset_task(req.task, int(req.n_objects), int(req.seed))
        except SimRobotError as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        return reset_response(resp, info.description, info.object_ids, info.labels, info.goal, info.boxes,
                              self.world.time_ns() if self.v["stamp_with_sim_time"] else time.time_ns())

    # --- the controllers ---------------------------------------------------------------------------
    def _on_goal(self, _goal) -> GoalResponse:
        return GoalResponse.ACCEPT if self.is_active else GoalResponse.REJECT

    def _follow(self, goal_handle) -> FollowJointTrajectory.Result:
        result = FollowJointTrajectory.Result()
        req = goal_handle.request
        tolerances = {}
        for key, tols in (("path", req.path_tolerance), ("goal", req.goal_tolerance)):
            by_name = {t.name: t.position for t in tols}
            tolerances[key] = None if not by_name else [by_name.get(j, 0.0) or (0.2 if key == "path" else 0.1)
                                                        for j in req.trajectory.joint_names]
        try:
            names, positions, times = joint_trajectory_from_msg(req.trajectory)
            self.world.start_trajectory(names, positions, times, tolerances["path"], tolerances["goal"],
                                        req.goal_time_tolerance.sec + req.goal_time_tolerance.nanosec * 1e-9)
        except (ConversionError, TrajectoryRejected) as exc:
            result.error_code = getattr(exc, "code", result.INVALID_GOAL)
            result.error_string = str(exc)
            goal_handle.abort()
            return result
        with self._serial_lock:
            self._goal_serial += 1
            serial = self._goal_serial
        joints = list(self.world.joints)
        while True:
            outcome = self.world.trajectory_outcome()
            if outcome is not None:
                break
            if self._goal_serial != serial:
                result.error_code, result.error_string = result.INVALID_GOAL, "preempted by a newer goal"
                goal_handle.abort()
                return result
            if goal_handle.is_cancel_requested:
                self.world.cancel_trajectory()
                result.error_string = "cancelled: holding position"
                goal_handle.canceled()
                return result
            progress = self.world.trajectory_progress()
            if progress is not None:
                ref, actual, t = progress
                fb = FollowJointTrajectory.Feedback(joint_names=joints)
                fb.desired = joint_trajectory_to_msg(joints, [ref], [t]).points[0]
                fb.actual = joint_trajectory_to_msg(joints, [actual], [t]).points[0]
                fb.error = joint_trajectory_to_msg(joints, [actual - ref], [t]).points[0]
                goal_handle.publish_feedback(fb)
            time.sleep(0.02)
        result.error_code, result.error_string = outcome.error_code, outcome.error_string
        if outcome.error_code == result.SUCCESSFUL:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _grip(self, goal_handle) -> GripperCommand.Result:
        cmd = goal_handle.request.command
        self.world.command_gripper(float(cmd.position), float(cmd.max_effort))
        result = GripperCommand.Result()
        deadline = time.monotonic() + 5.0
        while True:
            position, effort, stalled, reached = self.world.gripper_status()
            if reached or stalled or time.monotonic() > deadline or goal_handle.is_cancel_requested:
                break
            goal_handle.publish_feedback(GripperCommand.Feedback(position=position, effort=effort, stalled=stalled,
                                                                 reached_goal=reached))
            time.sleep(0.02)
        result.position, result.effort, result.stalled, result.reached_goal = position, effort, stalled, reached
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif reached or stalled:
            goal_handle.succeed()                  # the Robotiq driver: a stall on an object succeeds
        else:
            goal_handle.abort()
        return result


def main(args=None) -> None:
    run_node(SimArmNode, args)


if __name__ == "__main__":
    main()
