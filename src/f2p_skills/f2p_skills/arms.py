"""The arms and grippers the skill server drives, as data: what their vendors' drivers name and
allow. One :class:`ArmSpec` per robot; ``ARMS`` is the registry the node's ``arm`` parameter
picks from.

UR5e: Universal Robots' ROS 2 driver (``ur_robot_driver``, Jazzy/Kilted) and its description
(``ur_description``): six revolute joints, limits from ``ur5e/joint_limits.yaml`` (every joint
±2π except the elbow, ±π; 180 °/s each), the scaled joint trajectory controller, ``base_link``
(REP-103: x forward) and the controller's ``base`` rotated by π about z from it, the flange
``tool0`` (z out of the flange). Gripper: a Robotiq 2F-85 through the ``GripperCommand`` action
of ``robotiq_gripper_controller`` (ros2_robotiq_gripper): the knuckle joint from 0 (open,
85 mm between the pads) to 0.8 rad (closed); its pads' centre 0.15 m along ``tool0``'s z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GripperSpec:
    """A parallel gripper behind a ``control_msgs/GripperCommand`` action: ``joint`` from
    ``open_position`` to ``closed_position`` (the driver's units), ``max_aperture`` (m) between
    the pads when open; ``tcp_offset`` (m): the pads' centre along the flange's z;
    ``finger_depth`` (m): how far the pads reach below the TCP; ``max_effort`` (N)."""

    action: str
    joint: str
    open_position: float
    closed_position: float
    max_aperture: float
    tcp_offset: float
    finger_depth: float
    max_effort: float

    def position_for(self, aperture: float) -> float:
        """The joint position that leaves ``aperture`` m between the pads (linear in between)."""
        f = min(max(aperture / self.max_aperture, 0.0), 1.0)
        return self.closed_position + f * (self.open_position - self.closed_position)

    def aperture_at(self, position: float) -> float:
        """The gap (m) between the pads at joint ``position``."""
        f = (position - self.closed_position) / (self.open_position - self.closed_position)
        return min(max(f, 0.0), 1.0) * self.max_aperture


@dataclass(frozen=True)
class ArmSpec:
    """An arm behind a ``control_msgs/FollowJointTrajectory`` action. ``joints`` in the
    controller's order with ``lower`` / ``upper`` limits (rad or m), ``max_velocity`` and
    ``max_acceleration`` per joint; ``base_frame`` (REP-103) the frame kinematics are given in;
    ``tip_frame`` the flange; ``kinematics``: which solver (``ur5e``: the closed form);
    ``home``: a joint configuration clear of the workspace where the camera sees the table."""

    name: str
    controller_action: str
    joints: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_velocity: tuple[float, ...]
    max_acceleration: tuple[float, ...]
    base_frame: str
    tip_frame: str
    kinematics: str
    home: tuple[float, ...]
    gripper: GripperSpec

    def __post_init__(self):
        n = len(self.joints)
        for name in ("lower", "upper", "max_velocity", "max_acceleration", "home"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.name}: {name} has {len(getattr(self, name))} values for {n} joints")
        if any(lo >= hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"{self.name}: every lower limit must be below its upper one")


TWO_PI = 2.0 * math.pi

ROBOTIQ_2F85 = GripperSpec(action="/robotiq_gripper_controller/gripper_cmd", joint="robotiq_85_left_knuckle_joint",
                           open_position=0.0, closed_position=0.8, max_aperture=0.085, tcp_offset=0.15,
                           finger_depth=0.02, max_effort=100.0)

UR5E = ArmSpec(
    name="ur5e",
    controller_action="/scaled_joint_trajectory_controller/follow_joint_trajectory",
    joints=("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
            "wrist_3_joint"),
    lower=(-TWO_PI, -TWO_PI, -math.pi, -TWO_PI, -TWO_PI, -TWO_PI),
    upper=(TWO_PI, TWO_PI, math.pi, TWO_PI, TWO_PI, TWO_PI),
    max_velocity=(math.pi,) * 6,
    max_acceleration=(4.0,) * 6,
    base_frame="base_link",
    tip_frame="tool0",
    kinematics="ur5e",
    home=(0.0, -1.9, 1.9, -1.571, -1.571, 0.0),
    gripper=ROBOTIQ_2F85,
)

ARMS: dict[str, ArmSpec] = {UR5E.name: UR5E}


def arm(name: str) -> ArmSpec:
    """The ArmSpec called ``name``; ValueError naming the known ones."""
    try:
        return ARMS[name]
    except KeyError:
        raise ValueError(f"unknown arm {name!r}; known: {', '.join(ARMS)}") from None
