"""A simulated UR5e with a parallel gripper of a Robotiq 2F-85's dimensions, built into a MuJoCo
scene from UR's published DH parameters (the issue's second option: robosuite's model needs its
own patching, and its rounded link lengths put the flange up to 1.7 mm off UR's kinematics).

Kinematics: standard DH, T_i = Rz(q_i) Tz(d_i) Tx(a_i) Rx(alpha_i), UR5e's d1 0.1625, a2 -0.425,
a3 -0.3922, d4 0.1333, d5 0.0997, d6 0.0996, alpha (π/2, 0, 0, π/2, -π/2, 0): the same as the real
controller's (and ``ur_analytic_ik``'s) to float precision. ``base_link`` sits at the mount pose;
the DH ``base`` is it turned by π about z (ur_description). Links are capsules along the DH
offsets with UR's link masses (3.761, 8.058, 2.846, 1.37, 1.3, 0.365 kg); gravity is compensated
(as the real controller does) and each joint is a position servo with damping, limited to UR5e's
joint range. The arm does not collide with itself (the real one has no self-collision check
either; the skill server keeps it in sane configurations), but with everything else.

Gripper: a body 0.15 m long (flange to the pads' centre, ``f2p_skills.arms.ROBOTIQ_2F85``), two
pads on slide joints closing along the flange's x, 85 mm apart when open, coupled by an
equality, driven by a force-limited position servo: the jaws close until they squeeze the
object (grip force ≤ ``grip_force``), and friction holds it — no weld.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from f2p_common.frames import quat_multiply

#: UR5e DH parameters (Universal Robots, "DH parameters for calculations of kinematics and dynamics").
UR5E_DH = {"d": (0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996), "a": (0.0, -0.425, -0.3922, 0.0, 0.0, 0.0),
           "alpha": (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)}
UR5E_MASSES = (3.761, 8.058, 2.846, 1.37, 1.3, 0.365)
UR5E_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
               "wrist_3_joint")
UR5E_RANGE = ((-2 * math.pi, 2 * math.pi),) * 2 + ((-math.pi, math.pi),) + ((-2 * math.pi, 2 * math.pi),) * 3
#: Position-servo gains per joint (N m / rad) and their damping (N m s / rad).
SERVO_KP = (3000.0, 3000.0, 2000.0, 500.0, 500.0, 300.0)
SERVO_KV = (300.0, 300.0, 200.0, 40.0, 40.0, 20.0)
#: The links' capsule radii (m).
_RADIUS = (0.06, 0.054, 0.045, 0.038, 0.038, 0.032)

GRIPPER_JOINT = "robotiq_85_left_knuckle_joint"
#: The pads' travel per side (m): 85 mm open, 0 closed.
PAD_TRAVEL = 0.0425
#: Flange (tool0) to the pads' centre (m).
TCP_OFFSET = 0.15
#: Closing fully commands the servo this far past the stop (m): blocked by an object anywhere,
#: the jaws squeeze with the force limit, as the Robotiq's force control does.
SQUEEZE = 0.03
#: The finger slides' damping (N s / m): at the 60 N grip force the jaws close at ~0.1 m/s, as
#: a 2F-85 does (20-150 mm/s), and never pass through a 1 cm wall within a physics step.
FINGER_DAMPING = 600.0
#: The physics step of a scene with the arm (s).
ARM_TIMESTEP = 0.002


@dataclass(frozen=True)
class ArmMount:
    """Where ``base_link`` sits in the world: ``pos`` (m) and ``yaw`` (rad)."""

    pos: tuple[float, float, float] = (0.15, 0.0, 0.45)
    yaw: float = 0.0


#: ur_description's kinematic chain of a UR5e (its ``ur_macro.xacro`` with ``config/ur5e/
#: default_kinematics.yaml``): (link, parent, xyz, rpy, rotates with joint index or None). What
#: robot_state_publisher publishes on the robot; :func:`ur5e_link_frames` evaluates it.
UR5E_URDF_CHAIN = (
    ("base", "base_link", (0.0, 0.0, 0.0), (0.0, 0.0, math.pi), None),
    ("shoulder_link", "base", (0.0, 0.0, 0.1625), (0.0, 0.0, 0.0), 0),
    ("upper_arm_link", "shoulder_link", (0.0, 0.0, 0.0), (math.pi / 2, 0.0, 0.0), 1),
    ("forearm_link", "upper_arm_link", (-0.425, 0.0, 0.0), (0.0, 0.0, 0.0), 2),
    ("wrist_1_link", "forearm_link", (-0.3922, 0.0, 0.1333), (0.0, 0.0, 0.0), 3),
    ("wrist_2_link", "wrist_1_link", (0.0, -0.0997, 0.0), (math.pi / 2, 0.0, 0.0), 4),
    ("wrist_3_link", "wrist_2_link", (0.0, 0.0996, 0.0), (math.pi / 2, math.pi, math.pi), 5),
    ("flange", "wrist_3_link", (0.0, 0.0, 0.0), (0.0, -math.pi / 2, -math.pi / 2), None),
    ("tool0", "flange", (0.0, 0.0, 0.0), (math.pi / 2, 0.0, math.pi / 2), None),
)


def _axis_quat(axis: int, angle: float) -> np.ndarray:
    q = np.zeros(4)
    q[axis], q[3] = math.sin(angle / 2), math.cos(angle / 2)
    return q


def _rpy_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF's fixed-axis rpy, Rz(yaw) Ry(pitch) Rx(roll), as a quaternion (x, y, z, w)."""
    return quat_multiply(_axis_quat(2, yaw), quat_multiply(_axis_quat(1, pitch), _axis_quat(0, roll)))


def ur5e_link_frames(q) -> dict[str, tuple[str, np.ndarray]]:
    """{link: (parent, pose (x, y, z, qx, qy, qz, qw) of the link in its parent)} of
    :data:`UR5E_URDF_CHAIN` at joint angles ``q`` (rad, UR's joint order)."""
    frames = {}
    for link, parent, xyz, rpy, joint in UR5E_URDF_CHAIN:
        quat = _rpy_quat(*rpy)
        if joint is not None:
            quat = quat_multiply(quat, _axis_quat(2, float(q[joint])))
        frames[link] = (parent, np.concatenate([xyz, quat]))
    return frames


def _quat_x(angle: float) -> list[float]:
    return [math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]          # MuJoCo: w x y z


def _quat_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


def add_ur5e(spec: mujoco.MjSpec, mount: ArmMount = ArmMount(), grip_force: float = 60.0) -> None:
    """Add the UR5e and its gripper to ``spec`` at ``mount`` (module docstring). Names: bodies
    ``base_link``, ``base``, ``link1``..``link6``, ``tool0``, ``tcp``; joints by UR's names and
    ``robotiq_85_left_knuckle_joint`` / ``..._right_...`` (slides, m); actuators of the same names."""
    world = spec.worldbody
    pedestal_h = float(mount.pos[2])
    if pedestal_h > 0:
        pedestal = world.add_body(name="arm_pedestal", pos=[mount.pos[0], mount.pos[1], pedestal_h / 2])
        pedestal.add_geom(name="arm_pedestal", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.08, pedestal_h / 2, 0],
                          rgba=[0.3, 0.3, 0.32, 1])
        for body in ("base", "link1"):                  # the arm stands on it
            spec.add_exclude(bodyname1="arm_pedestal", bodyname2=body)
    base_link = world.add_body(name="base_link", pos=list(mount.pos), quat=_quat_z(mount.yaw))
    parent = base_link.add_body(name="base", quat=_quat_z(math.pi))
    parent.add_geom(name="base/shell", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.075, 0.04, 0], pos=[0, 0, 0.04],
                    rgba=[0.7, 0.7, 0.72, 1], contype=2, conaffinity=1)
    d, a, alpha = UR5E_DH["d"], UR5E_DH["a"], UR5E_DH["alpha"]
    for i in range(6):
        link = parent.add_body(name=f"link{i + 1}", gravcomp=1.0)
        link.add_joint(name=UR5E_JOINTS[i], type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1],
                       range=list(UR5E_RANGE[i]), armature=0.1, damping=1.0)
        # the link's body runs from this joint to the next: Tz(d) then Tx(a), in this frame
        end = np.array([a[i], 0.0, d[i]])
        link.add_geom(name=f"link{i + 1}/shell", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                      fromto=([0, 0, 0.02 if i == 0 else 0.0, a[i], 0, d[i]] if np.linalg.norm(end) > 1e-6
                              else [0, 0, -0.01, 0, 0, 0.01]),
                      size=[_RADIUS[i], 0, 0], rgba=[0.6, 0.65, 0.7, 1], contype=2, conaffinity=1,
                      mass=UR5E_MASSES[i])
        child = link.add_body(name=f"link{i + 1}_end", pos=[a[i], 0.0, d[i]], quat=_quat_x(alpha[i]))
        parent = child
    tool0 = parent.add_body(name="tool0")
    _add_gripper(tool0, grip_force)
    for i, name in enumerate(UR5E_JOINTS):
        spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          gaintype=mujoco.mjtGain.mjGAIN_FIXED, gainprm=[SERVO_KP[i]] + [0] * 9,
                          biastype=mujoco.mjtBias.mjBIAS_AFFINE, biasprm=[0, -SERVO_KP[i], -SERVO_KV[i]] + [0] * 7,
                          ctrlrange=list(UR5E_RANGE[i]), forcerange=[-330.0, 330.0] if i < 3 else [-56.0, 56.0])
    for side in ("left", "right"):           # the two jaws close together, each force-limited
        joint = GRIPPER_JOINT.replace("left", side)
        spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          gaintype=mujoco.mjtGain.mjGAIN_FIXED, gainprm=[2000.0] + [0] * 9,
                          biastype=mujoco.mjtBias.mjBIAS_AFFINE, biasprm=[0, -2000.0, 0.0] + [0] * 7,
                          ctrlrange=[-SQUEEZE, PAD_TRAVEL + SQUEEZE], forcerange=[-grip_force, grip_force])
    # the jaws' squeeze needs stiff contacts: 2 ms steps (the floating-pad world keeps its own)
    spec.option.timestep = min(spec.option.timestep, ARM_TIMESTEP)


def _add_gripper(tool0, grip_force: float) -> None:
    body = tool0.add_body(name="gripper_base", gravcomp=1.0)
    body.add_geom(name="gripper/coupling", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.038, 0.02, 0],
                  pos=[0, 0, 0.02], rgba=[0.15, 0.15, 0.15, 1], contype=2, conaffinity=1, mass=0.2)
    body.add_geom(name="gripper/body", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.045, 0.02, 0.035],
                  pos=[0, 0, 0.075], rgba=[0.15, 0.15, 0.15, 1], contype=2, conaffinity=1, mass=0.6)
    body.add_site(name="tcp", pos=[0, 0, TCP_OFFSET])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        finger = body.add_body(name=f"gripper/{side}_finger", pos=[sign * PAD_TRAVEL, 0, 0], gravcomp=1.0)
        finger.add_joint(name=GRIPPER_JOINT.replace("left", side), type=mujoco.mjtJoint.mjJNT_SLIDE,
                         axis=[-sign, 0, 0], range=[0.0, PAD_TRAVEL], armature=0.1, damping=FINGER_DAMPING)
        finger.add_geom(name=f"gripper/{side}_link", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.006, 0.011, 0.03],
                        pos=[sign * 0.012, 0, 0.115], rgba=[0.2, 0.2, 0.2, 1], contype=2, conaffinity=1, mass=0.05)
        finger.add_geom(name=f"gripper/{side}_pad", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.004, 0.011, 0.0175],
                        pos=[sign * 0.004, 0, TCP_OFFSET], rgba=[0.05, 0.05, 0.05, 1], contype=2, conaffinity=1,
                        friction=[1.5, 0.02, 0.002], condim=4, mass=0.02, solref=[0.004, 1.0],
                        solimp=[0.95, 0.99, 0.001, 0.5, 2.0])


class Ur5eRig:
    """The UR5e and its gripper for ``MujocoBackend(robot=...)``: added to every scene at
    ``mount``, starting at ``home`` (joints, rad) with the gripper open."""

    def __init__(self, mount: ArmMount = ArmMount(), home=(0.0, -1.9, 1.9, -1.571, -1.571, 0.0),
                 grip_force: float = 60.0):
        self.mount, self.home, self.grip_force = mount, tuple(float(v) for v in home), float(grip_force)
        self.joints = UR5E_JOINTS

    def add(self, spec: mujoco.MjSpec) -> None:
        add_ur5e(spec, self.mount, self.grip_force)

    def initialise(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        for name, q in zip(self.joints, self.home):
            data.qpos[model.jnt_qposadr[model.joint(name).id]] = q
            data.ctrl[model.actuator(name).id] = q
        for side in ("left", "right"):
            data.ctrl[model.actuator(GRIPPER_JOINT.replace("left", side)).id] = 0.0
        mujoco.mj_forward(model, data)
