"""The arm skill server's algorithms without ROS (f2p_skills): kinematics against the simulated
UR5e's MuJoCo model, timing within the joint limits, the checks every trajectory passes, skill
plans and their refusals, and a physical pick and place in the simulated cell."""
from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from f2p_common.interfaces import OrientedBox, SkillCall
from f2p_skills.arms import UR5E, arm
from f2p_skills.kinematics import IKError, Kinematics, top_down
from f2p_skills.motion import PathError, cartesian_path, check_trajectory, gripper_points, time_path
from f2p_skills.skills import SkillError, SkillErrorCode, SkillPlanner

I = [0.0, 0.0, 0.0, 1.0]
TABLE = OrientedBox([0.4, 0.0, -0.02], I, [0.6, 1.2, 0.04])


@pytest.fixture(scope="module")
def kin():
    return Kinematics(UR5E)


def test_fk_is_the_simulated_ur5e_models_and_ik_inverts_it(kin):
    from f2p_sim.arm_model import ArmMount, UR5E_JOINTS, add_ur5e
    spec = mujoco.MjSpec()
    add_ur5e(spec, ArmMount((0.0, 0.0, 0.0)))
    m = spec.compile()
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(-3.0, 3.0, 6)
        for name, v in zip(UR5E_JOINTS, q):
            d.qpos[m.jnt_qposadr[m.joint(name).id]] = v
        mujoco.mj_kinematics(m, d)
        tcp = np.eye(4)
        tcp[:3, :3], tcp[:3, 3] = d.site("tcp").xmat.reshape(3, 3), d.site("tcp").xpos
        np.testing.assert_allclose(kin.fk(q), tcp, atol=1e-9)
        sol = kin.ik(kin.fk(q), q)
        np.testing.assert_allclose(kin.fk(sol), kin.fk(q), atol=1e-9)
        assert kin.within_limits(sol)
    with pytest.raises(IKError, match="within its joint limits reaches"):
        kin.ik(top_down([1.5, 0.0, 0.0], 0.0), UR5E.home)
    with pytest.raises(ValueError, match="unknown arm"):
        arm("ur10")


def test_a_timed_path_keeps_every_joint_within_its_velocity_and_acceleration(kin):
    path = cartesian_path(kin, UR5E.home, [top_down([0.5, -0.3, 0.1], 0.5), top_down([0.3, 0.4, 0.2], -0.5)])
    for speed in (1.0, 0.3):
        traj = time_path(UR5E.joints, path, UR5E.max_velocity, UR5E.max_acceleration, speed)
        dq = np.diff(traj.positions, axis=0) / np.diff(traj.times)[:, None]
        assert np.all(np.abs(dq) <= np.array(UR5E.max_velocity) * speed * 1.001)
        assert traj.times[0] == 0.0 and np.all(np.diff(traj.times) > 0)
    # straight lines: the first segment's waypoints lie on the line from the start to its end
    tcp = np.array([kin.fk(q)[:3, 3] for q in path])
    start = kin.fk(UR5E.home)[:3, 3]
    first = tcp[: np.argmin(np.linalg.norm(tcp - [0.5, -0.3, 0.1], axis=1)) + 1]
    d = np.cross(first - start, np.array([0.5, -0.3, 0.1]) - start)
    assert np.linalg.norm(d, axis=1).max() < 1e-3


def test_check_trajectory_refuses_a_gripper_inside_a_support_and_joints_out_of_limits(kin):
    q = kin.ik(top_down([0.4, 0.0, 0.01], 0.0), UR5E.home)             # fingertips 1 cm into the table
    traj = time_path(UR5E.joints, np.array([q, q]), UR5E.max_velocity, UR5E.max_acceleration)
    with pytest.raises(PathError, match="into the box"):
        check_trajectory(kin, traj, [TABLE])
    assert gripper_points(kin, q)[1:3, 2].min() < 0.0
    traj.positions[1, 2] = 4.0
    with pytest.raises(PathError, match="leaves the joint limits: elbow_joint 4.000"):
        check_trajectory(kin, traj, [])


def test_plans_keep_out_of_every_box_and_within_the_limits(kin):
    planner = SkillPlanner(kin)
    cube = OrientedBox([0.4, -0.2, 0.025], I, [0.05, 0.06, 0.05])
    other = OrientedBox([0.4, 0.0, 0.03], I, [0.05, 0.05, 0.06])
    plan = planner.plan(SkillCall("pick_place", ("cuboid_1",), (0.0, 0.35, 0.0)), cube, UR5E.home, [TABLE, other])
    assert [p.name for p in plan.phases] == ["open", "approach", "descend", "grasp", "lift", "transport", "place",
                                             "release", "retreat", "view"]
    assert plan.phases[0].aperture == pytest.approx(0.07)                 # the narrow side + 2 cm
    for phase in plan.phases:
        if phase.trajectory is not None:
            assert all(kin.within_limits(q) for q in phase.trajectory.positions)
            lowest = min(gripper_points(kin, q)[:, 2].min() for q in phase.trajectory.positions)
            assert lowest > TABLE.center[2] + 0.02                          # never into the table
    grasp = kin.fk(plan.phases[2].trajectory.positions[-1])
    assert grasp[2, 2] == pytest.approx(-1.0) and abs(grasp[0, 0]) == pytest.approx(1.0, abs=1e-6)   # across x
    push = planner.plan(SkillCall("push", ("cuboid_1",), (math.pi / 2, 0.1)), cube, UR5E.home, [TABLE])
    assert [p.name for p in push.phases] == ["close", "approach", "push", "retreat", "view"]


def test_refusals_name_why(kin):
    planner = SkillPlanner(kin)
    cube = OrientedBox([0.4, -0.2, 0.025], I, [0.05, 0.06, 0.05])
    far_side = OrientedBox([0.65, 0.2, 0.025], I, [0.05, 0.06, 0.05])
    cases = [(SkillCall("pick_place", ("c",), (0.0, 0.8, 0.0)), far_side, SkillErrorCode.UNREACHABLE, "place pose"),
             (SkillCall("pick_place", ("c",), (0.0, 0.1, 0.0)), None, SkillErrorCode.UNKNOWN_TARGET, "its target's box"),
             (SkillCall("open_drawer", ("c",), (0.1,)), cube, SkillErrorCode.NOT_SUPPORTED, "not served")]
    for call, box, code, words in cases:
        with pytest.raises(SkillError, match=words) as err:
            planner.plan(call, box, UR5E.home, [TABLE])
        assert err.value.code == code
    with pytest.raises(SkillError, match="outside its joint limits") as err:
        planner.plan(cases[0][0], cube, np.array(UR5E.home) + [0, 0, 3.0, 0, 0, 0], [TABLE])


def test_a_bins_rim_is_grasped_and_items_inside_a_bin_are_reached_into(kin):
    planner = SkillPlanner(kin)
    bin_box = OrientedBox([0.35, -0.3, 0.05], I, [0.24, 0.28, 0.1])
    item = OrientedBox([0.33, -0.35, 0.04], I, [0.06, 0.07, 0.065])
    plan = planner.plan(SkillCall("pick_place", ("bin_2",), (0.0, 0.6, 0.0)), bin_box, UR5E.home, [TABLE, item])
    grasp = kin.fk(plan.phases[2].trajectory.positions[-1])[:3, 3]
    assert np.linalg.norm(grasp[:2] - bin_box.center[:2]) > 0.1            # at the rim, not the middle
    plan = planner.plan(SkillCall("pick_place", ("cuboid_3",), (0.0, 0.6, 0.0)), item, UR5E.home, [TABLE, bin_box])
    assert plan.phases[2].name == "descend"


def test_a_physical_pick_and_place_in_the_simulated_cell():
    """The plan run by the simulated controllers: the jaws close on the cube (no weld) and carry it."""
    from f2p_sim.arm_world import ArmWorld
    from f2p_sim.config import load_world_config
    world = ArmWorld(load_world_config())
    info = world.reset_task("transport", 3, 1000)
    base = world.body_pose("base_link")[:3]
    boxes = {o: OrientedBox(b.center - base, b.orientation, b.size) for o, b in zip(info.object_ids, info.boxes)}
    kin = Kinematics(UR5E)
    plan = SkillPlanner(kin).plan(SkillCall("pick_place", ("cuboid_4",), (0.0, 0.6, 0.0)), boxes["cuboid_4"],
                                  world.joint_state()[1][:6], [b for o, b in boxes.items() if o != "cuboid_4"])
    for phase in plan.phases:
        if phase.trajectory is not None:
            world.start_trajectory(UR5E.joints, phase.trajectory.positions, phase.trajectory.times)
            while world.trajectory_outcome() is None:
                world.step(0.05)
            assert world.trajectory_outcome().error_code == 0, (phase.name, world.trajectory_outcome())
        if phase.aperture is not None:
            world.command_gripper(UR5E.gripper.position_for(phase.aperture), UR5E.gripper.max_effort)
            for _ in range(100):
                world.step(0.02)
                position, _effort, stalled, reached = world.gripper_status()
                if stalled or reached:
                    break
            if phase.expect_grasp:
                assert stalled and UR5E.gripper.aperture_at(position) > 0.02          # holding the cube
    after = world.object_centres()["cuboid_4"]
    np.testing.assert_allclose(after[:2], boxes["cuboid_4"].center[:2] + [0.0, 0.6], atol=0.02)
    assert not world.protective_stopped
