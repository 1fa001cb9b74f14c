"""``skill_server`` lifecycle node: ``ExecuteSkill`` on a real arm, through its vendor's controller.

==================================  ======================================  ==========================
interface                           type                                    what
==================================  ======================================  ==========================
act ``execute_skill``               f2p_interfaces/ExecuteSkill             one skill; feedback per
                                                                            phase; cancel cancels the
                                                                            controller's goal
sub ``/joint_states``               sensor_msgs/JointState                  the arm's and gripper's
                                                                            joints (joint_state_
                                                                            broadcaster)
sub ``segmented_scene``             f2p_interfaces/SegmentedScene           every object's box: what
                                                                            the gripper keeps out of
sub ``robot_stopped_topic``         std_msgs/Bool                           true while runstopped /
                                                                            protectively stopped
act ``controller_action``           control_msgs/FollowJointTrajectory      the arm's controller
                                                                            (client)
act ``gripper_action``              control_msgs/GripperCommand             the gripper (client)
pub ``/diagnostics``                diagnostic_msgs/DiagnosticArray         skills run, last outcome
pub ``/tf_static``                  tf2_msgs/TFMessage                      ``tcp``: the pads' centre,
                                                                            ``tcp_offset`` along the
                                                                            arm's ``tool0`` (for rviz
                                                                            and perception's self
                                                                            filter)
==================================  ======================================  ==========================

The skill is planned whole before anything moves (``f2p_skills.skills``): key poses within
reach, straight approach / lift / transport / place / retreat lines, the gripper never inside a
box other than the target, every joint within its limits. Target boxes come in the goal's
``header.frame_id`` and are moved into the arm's ``base_frame`` through tf (``f2p_ros.tf``).
Then each phase is one ``FollowJointTrajectory`` goal (its first point: where the joints are)
or one ``GripperCommand``; after the grasp the pads must stay apart (something is held), and
again after transport. After the skill the arm goes to its viewing pose (``home``) so that the
camera sees the table. Every failure has its ``error_code`` (ExecuteSkill's ``ERROR_*``:
unreachable, IK failed, controller rejected, tolerance violated, grasp lost, robot stopped,
stale joint states, cancelled); a failure mid-skill leaves the arm where it stopped.
Parameters: ``arm`` picks the robot (``f2p_skills.arms``); the rest is in ``PARAMS``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from action_msgs.msg import GoalStatus
from control_msgs.action import FollowJointTrajectory, GripperCommand
from rclpy.action import GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from f2p_common.frames import TransformError, compose
from f2p_common.interfaces import OrientedBox
from f2p_interfaces.action import ExecuteSkill
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_ros.actions import ActionClient
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, box_from_msg, joint_positions_from_msg, joint_trajectory_to_msg,
                                 ns_to_duration, scene_from_msg, skill_call_from_msg, stamp_to_ns)
from f2p_ros.nodes import NO_EVENT_HANDLERS, OK, WARN, ManagedNode, diagnostics, run_node, wait_for
from f2p_ros.tf import TransformListener, TransformPublisher
from f2p_skills.arms import ARMS, arm as arm_spec
from f2p_skills.kinematics import Kinematics
from f2p_skills.skills import Phase, SkillConfig, SkillError, SkillErrorCode, SkillPlanner

#: The frame of the pads' centre this node publishes under the arm's tip frame.
TCP_FRAME = "tcp"

PARAMS = [
    P.Param("arm", "ur5e", "the arm driven (f2p_skills.arms)", P.one_of(*ARMS)),
    P.Param("controller_action", "", "the arm controller's FollowJointTrajectory action ('' = the arm's driver's "
                                     "default, e.g. /scaled_joint_trajectory_controller/follow_joint_trajectory; "
                                     "read when the node starts)"),
    P.Param("gripper_action", "", "the gripper's GripperCommand action ('' = the arm's default; read when the node "
                                  "starts)"),
    P.Param("robot_stopped_topic", "robot_stopped", "std_msgs/Bool, true while the robot is runstopped or "
                                                    "protectively stopped ('' = none; on a UR a bridge of the "
                                                    "driver's safety_mode publishes it)"),
    P.Param("stop_grace_s", 0.25, "after a controller abort, how long a stop report may lag it and still name the "
                                  "stop as the cause (s)", P.positive_or_zero),
    P.Param("stale_joint_states_s", 0.5, "joint states older than this refuse a skill (s)", P.positive),
    P.Param("start_tolerance", 0.05, "largest gap (rad or m) between the joints and a trajectory's first point",
            P.positive),
    P.Param("goal_time_tolerance_s", 1.0, "the controller's goal_time_tolerance per trajectory (s)", P.positive_or_zero),
    P.Param("controller_timeout_s", 5.0, "longest wait for the controller to accept a goal (s)", P.positive),
    P.Param("tcp_offset", 0.0, "flange (tool0) to the gripper pads' centre along the flange's z (m); 0 = the arm's "
                               "gripper's own (f2p_skills.arms: 0.15 for a 2F-85 on UR's flange; measure yours with its "
                               "coupling)", P.positive_or_zero),
    P.Param("speed", 0.5, "fraction of the joint velocity limits used", P.in_range(0.01, 1.0), live=True),
    P.Param("clearance", 0.08, "over every box's top while moving between poses (m)", P.positive, live=True),
    P.Param("tf_timeout_s", 0.5, "longest wait for the goal frame's transform (s)", P.positive_or_zero),
]


class _Failed(Exception):
    def __init__(self, message: str, code: SkillErrorCode):
        super().__init__(message)
        self.code = code


class SkillServerNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("skill_server", **kwargs)
        P.declare(self, PARAMS)
        self._skill = threading.Lock()
        self._state_lock = threading.Lock()
        self._joints: dict[str, float] = {}
        self._joints_at = -float("inf")
        self._obstacles: list[tuple[str, OrientedBox]] = []
        self._stopped = False
        self._stop_seen = threading.Event()
        self.skills_run = 0
        self._calls = ReentrantCallbackGroup()
        self._receive = MutuallyExclusiveCallbackGroup()
        self.create_guarded_action_server(ExecuteSkill, "execute_skill", self._execute, self._on_goal,
                                          callback_group=ReentrantCallbackGroup())
        # The controllers' action names are read here, once: the clients live as long as the node.
        v = P.load(self, PARAMS)
        default = ARMS[v["arm"]]
        self._arm_client = self.until_destroyed(ActionClient(
            self, FollowJointTrajectory, v["controller_action"] or default.controller_action, callback_group=self._calls))
        self._gripper_client = self.until_destroyed(ActionClient(
            self, GripperCommand, v["gripper_action"] or default.gripper.action, callback_group=self._calls))

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            self.arm = arm_spec(v["arm"])
            if v["tcp_offset"] > 0:
                self.arm = replace(self.arm, gripper=replace(self.arm.gripper, tcp_offset=float(v["tcp_offset"])))
            self.kin = Kinematics(self.arm)
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.v = v
        self._tf = TransformListener(self, callback_group=self._receive)
        for endpoint in self._tf.endpoints:
            self.until_cleanup(endpoint)
        self._diag = self.create_diagnostics_publisher()
        self._frames = TransformPublisher(self)
        for endpoint in self._frames.endpoints:
            self.until_cleanup(endpoint)
        self._frames.send_static([(self.arm.tip_frame, TCP_FRAME, [0.0, 0.0, self.arm.gripper.tcp_offset, 0.0, 0.0, 0.0,
                                                                   1.0])])
        self.get_logger().info(f"configured for {self.arm.name}: {self._arm_client._action_name}, "
                               f"{self._gripper_client._action_name}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        sub = NO_EVENT_HANDLERS["sub"]
        self.until_deactivate(self.create_subscription(JointState, "/joint_states", self._on_joints, qos.sensor(),
                                                       callback_group=self._receive, event_callbacks=sub))
        self.until_deactivate(self.create_subscription(SegmentedSceneMsg, "segmented_scene", self._on_scene,
                                                       qos.latched(), callback_group=self._receive,
                                                       event_callbacks=sub))
        if self.v["robot_stopped_topic"]:
            self.until_deactivate(self.create_subscription(Bool, self.v["robot_stopped_topic"], self._on_stopped,
                                                           qos.latched(), callback_group=self._receive,
                                                           event_callbacks=sub))
        return super().on_activate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._tf.close()
        return super().on_cleanup(state)

    # --- inputs ------------------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        try:
            positions = joint_positions_from_msg(msg)
        except ConversionError as exc:
            self.get_logger().warning(f"ignored joint states: {exc}", throttle_duration_sec=5.0)
            return
        with self._state_lock:
            self._joints.update(positions)
            self._joints_at = time.monotonic()

    def _on_scene(self, msg: SegmentedSceneMsg) -> None:
        try:
            scene = scene_from_msg(msg)
            boxes = [(o.id, self._to_base(o.box, scene.frame_id, 0)) for o in scene.objects if o.box is not None]
        except (ConversionError, TransformError, ValueError) as exc:
            self.get_logger().warning(f"ignored a scene: {exc}", throttle_duration_sec=5.0)
            return
        with self._state_lock:
            self._obstacles = boxes

    def _on_stopped(self, msg: Bool) -> None:
        self._stopped = bool(msg.data)
        if self._stopped:
            self._stop_seen.set()
        else:
            self._stop_seen.clear()

    def _stopped_now(self) -> bool:
        """The robot is stopped, or says so within stop_grace_s (its report may trail the abort)."""
        return self._stopped or self._stop_seen.wait(self.v["stop_grace_s"])

    def joint_positions(self) -> np.ndarray:
        """The arm's joints now, in the controller's order; _Failed when stale or incomplete."""
        with self._state_lock:
            age = time.monotonic() - self._joints_at
            missing = [j for j in self.arm.joints if j not in self._joints]
            q = None if missing else np.array([self._joints[j] for j in self.arm.joints])
        if missing or age > self.v["stale_joint_states_s"]:
            why = f"no state of {', '.join(missing)}" if missing else f"the newest is {age:.2f} s old"
            raise _Failed(f"joint states on /joint_states are stale ({why}): nothing moved",
                          SkillErrorCode.STALE_JOINT_STATES)
        return q

    def _gripper_aperture(self) -> float | None:
        with self._state_lock:
            pos = self._joints.get(self.arm.gripper.joint)
        return None if pos is None else self.arm.gripper.aperture_at(pos)

    def _to_base(self, box: OrientedBox, frame: str, stamp_ns: int) -> OrientedBox:
        if not frame or frame == self.arm.base_frame:
            return box
        pose = self._tf.lookup(self.arm.base_frame, frame, stamp_ns, self.v["tf_timeout_s"])
        moved = compose(pose, np.concatenate([box.center, box.orientation]))
        return OrientedBox(moved[:3], moved[3:] / np.linalg.norm(moved[3:]), box.size)

    # --- the action ----------------------------------------------------------------------
    def _on_goal(self, goal) -> GoalResponse:
        if not self.is_active or self._skill.locked():
            self.get_logger().warning("rejected an execute_skill goal: " +
                                      ("not active" if not self.is_active else "a skill is already running"))
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle) -> ExecuteSkill.Result:
        result = ExecuteSkill.Result()
        if not self._skill.acquire(blocking=False):
            goal_handle.abort()
            result.error_code, result.message = SkillErrorCode.NOT_READY, "a skill is already running"
            return result
        try:
            result.message = self._run(goal_handle)
            result.success, result.error_code = True, SkillErrorCode.NONE
        except SkillError as exc:
            result.error_code, result.message = int(exc.code), f"refused: {exc}"
        except _Failed as exc:
            result.error_code, result.message = int(exc.code), str(exc)
        finally:
            self._skill.release()
        result.finished = self.get_clock().now().to_msg()
        self.skills_run += 1
        if result.success:
            goal_handle.succeed()
        elif result.error_code == SkillErrorCode.CANCELLED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        self._diag.publish(diagnostics(self, "skills", OK if result.success else WARN, result.message,
                                       skills=self.skills_run, error_code=result.error_code))
        return result

    def _run(self, goal_handle) -> str:
        req = goal_handle.request
        try:
            call = skill_call_from_msg(req.skill)
            boxes = [box_from_msg(b) for b in req.target_boxes]
        except ConversionError as exc:
            raise SkillError(str(exc), SkillErrorCode.INVALID_GOAL) from None
        if len(boxes) > len(call.target_ids):
            raise SkillError(f"{len(boxes)} target boxes for {len(call.target_ids)} target(s)",
                             SkillErrorCode.INVALID_GOAL)
        frame = req.header.frame_id
        try:
            target = self._to_base(boxes[0], frame, stamp_to_ns(req.header.stamp)) if boxes else None
        except TransformError as exc:
            raise SkillError(f"the goal's frame {frame!r} cannot be moved into {self.arm.base_frame!r}: {exc}",
                             SkillErrorCode.INVALID_GOAL) from None
        if self._stopped:
            raise _Failed("the robot is stopped (runstop / protective stop): release it first", SkillErrorCode.ROBOT_STOPPED)
        q = self.joint_positions()
        with self._state_lock:
            obstacles = [b for oid, b in self._obstacles if oid != call.target_ids[0] and not _same(b, target)]
        planner = SkillPlanner(self.kin, SkillConfig(speed=float(self.v["speed"]), clearance=float(self.v["clearance"])))
        plan = planner.plan(call, target, q, obstacles)
        total, done = max(plan.duration, 1e-6), 0.0
        for phase in plan.phases:
            goal_handle.publish_feedback(ExecuteSkill.Feedback(phase=phase.name, progress=float(done / total)))
            self._phase(phase, goal_handle)
            if phase.trajectory is not None:
                done += phase.trajectory.duration
            if phase.name in ("lift", "transport") and not self._holding():
                raise _Failed(f"the object was lost during {phase.name}: the gripper closed on nothing",
                              SkillErrorCode.GRASP_LOST)
        return f"{call.skill} on {call.target_ids[0]} done in {len(plan.phases)} phases ({plan.duration:.1f} s of motion)"

    def _holding(self) -> bool:
        aperture = self._gripper_aperture()
        return aperture is None or aperture >= SkillConfig.min_grip

    def _phase(self, phase: Phase, goal_handle) -> None:
        stop = lambda: goal_handle.is_cancel_requested          # noqa: E731
        if stop():
            raise _Failed(f"cancelled before {phase.name}", SkillErrorCode.CANCELLED)
        if self._stopped:
            raise _Failed(f"the robot stopped before {phase.name}", SkillErrorCode.ROBOT_STOPPED)
        if phase.trajectory is not None:
            self._follow(phase, stop)
        if phase.aperture is not None:
            self._grip(phase, stop)

    def _send(self, client, goal, what: str, stop):
        if not client.wait_for_server(timeout_sec=self.v["controller_timeout_s"]):
            raise _Failed(f"{what}: {client._action_name} is not there", SkillErrorCode.CONTROLLER_REJECTED)
        handle = wait_for(client.send_goal_async(goal), self.v["controller_timeout_s"])
        if not handle.accepted:
            raise _Failed(f"{what}: {client._action_name} rejected the goal", SkillErrorCode.CONTROLLER_REJECTED)
        result_future = handle.get_result_async()
        try:
            return wait_for(result_future, float("inf"), stop=lambda: stop() or self._stopped)
        except InterruptedError:
            wait_for(handle.cancel_goal_async(), self.v["controller_timeout_s"])
            try:                                        # the goal ends once the controller has stopped
                wait_for(result_future, self.v["controller_timeout_s"])
            except TimeoutError:
                self.get_logger().error(f"{what}: {client._action_name} did not end its goal after the cancel")
            if self._stopped:
                raise _Failed(f"the robot stopped during {what}", SkillErrorCode.ROBOT_STOPPED) from None
            raise _Failed(f"cancelled during {what}; the controller's goal was cancelled",
                          SkillErrorCode.CANCELLED) from None

    def _follow(self, phase: Phase, stop) -> None:
        traj = phase.trajectory
        q = self.joint_positions()
        gap = float(np.abs(q - traj.positions[0]).max())
        if gap > self.v["start_tolerance"]:
            raise _Failed(f"{phase.name}: the arm is {gap:.3f} from where the trajectory starts (moved meanwhile?)",
                          SkillErrorCode.EXECUTION_FAILED)
        goal = FollowJointTrajectory.Goal()
        goal.trajectory = joint_trajectory_to_msg(traj.joints, traj.positions, traj.times, traj.velocities)
        goal.goal_time_tolerance = ns_to_duration(int(self.v["goal_time_tolerance_s"] * 1e9))
        wrapped = self._send(self._arm_client, goal, phase.name, stop)
        res = wrapped.result
        if wrapped.status == GoalStatus.STATUS_SUCCEEDED and res.error_code == res.SUCCESSFUL:
            return
        if self._stopped_now():
            raise _Failed(f"the robot stopped during {phase.name}: {res.error_string}", SkillErrorCode.ROBOT_STOPPED)
        tolerance = (res.PATH_TOLERANCE_VIOLATED, res.GOAL_TOLERANCE_VIOLATED)
        code = SkillErrorCode.TOLERANCE_VIOLATED if res.error_code in tolerance else SkillErrorCode.CONTROLLER_REJECTED
        raise _Failed(f"{phase.name}: the controller ended the trajectory (error {res.error_code}: "
                      f"{res.error_string or 'no reason given'})", code)

    def _grip(self, phase: Phase, stop) -> None:
        g = self.arm.gripper
        goal = GripperCommand.Goal()
        goal.command.position = g.position_for(phase.aperture)
        goal.command.max_effort = g.max_effort
        wrapped = self._send(self._gripper_client, goal, phase.name, stop)
        if wrapped.status not in (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED):
            raise _Failed(f"{phase.name}: the gripper ended with status {wrapped.status}",
                          SkillErrorCode.CONTROLLER_REJECTED)
        if phase.expect_grasp:
            aperture = g.aperture_at(wrapped.result.position)
            if aperture < SkillConfig.min_grip:
                raise _Failed(f"{phase.name}: the gripper closed on nothing (pads {1000 * aperture:.1f} mm apart)",
                              SkillErrorCode.GRASP_LOST)


def _same(a: OrientedBox | None, b: OrientedBox | None) -> bool:
    """The same box (the target as perception reported it, under another id)."""
    return a is not None and b is not None and bool(np.allclose(a.center, b.center, atol=0.02))


def main(args=None) -> None:
    run_node(SkillServerNode, args)


if __name__ == "__main__":
    main()
