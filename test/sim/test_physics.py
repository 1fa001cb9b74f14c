"""Physics the three paper tasks depend on (paper 000 A.2, A.10): contents of a carried
container move with it, a pushed row of touching objects moves together, pick-and-place lands
where asked, a drawer opens by the commanded distance, a dropped object falls."""
import numpy as np
import pytest

from conftest import TABLE_TOP, bin_with_items, cube, table
from f2p_sim.scene import ObjectSpec, SceneError, SceneSpec
from f2p_sim.skills import SkillError


def seg(backend, name):
    return [s.name for s in backend.segments].index(name)


def test_contents_of_carried_container_move_with_it(backend):
    backend.load(bin_with_items())
    rep = backend.execute_skill("pick_place", seg(backend, "bin"), (0.0, -0.3, 0.0))
    assert rep.executed and rep.grasp_success and not rep.flags
    d = rep.displacement
    # The bin went where asked; its contents followed through contact and friction only.
    assert np.allclose(d[1, :2], [0.0, -0.3], atol=0.02)
    for item in ("a", "b"):
        assert np.allclose(d[seg(backend, item), :2], d[1, :2], atol=0.02)
    rel = backend.relations()
    assert rel.holds("inside", seg(backend, "a"), 1) and rel.holds("inside", seg(backend, "b"), 1)
    # The carried bin was never teleported: the free cube elsewhere did not move either.
    assert np.linalg.norm(d[seg(backend, "c")]) < 0.005


def test_pushed_row_of_touching_objects_moves_together(backend):
    scene = SceneSpec([table(), cube("a", 0.40, 0.0), cube("b", 0.45, 0.0), cube("c", 0.50, 0.0)])
    backend.load(scene)
    rep = backend.execute_skill("push", 1, (0.0, 0.12))  # push "a" along +x
    assert rep.executed and not rep.flags
    for i in (1, 2, 3):
        assert rep.displacement[i, 0] > 0.09, rep.displacement
        assert abs(rep.displacement[i, 1]) < 0.02
    assert rep.gripper_contacts == [1]  # only the first object was touched by the gripper
    assert abs(rep.achieved - 0.12) < 0.02


def test_push_moves_a_free_object_by_the_distance(backend):
    backend.load(SceneSpec([table(), cube("a", 0.5, 0.0), cube("b", 0.7, 0.3), cube("c", 0.4, -0.3)]))
    rep = backend.execute_skill("push", 1, (np.pi / 2, 0.15))
    assert abs(rep.achieved - 0.15) < 0.015
    assert abs(rep.displacement[1, 0]) < 0.015


def test_pick_and_place_lands_where_asked(backend):
    backend.load(SceneSpec([table(), cube("a", 0.5, 0.1), cube("b", 0.7, 0.3), cube("c", 0.4, -0.3)]))
    rep = backend.execute_skill("pick_place", 1, (0.12, -0.2, 0.0))
    assert rep.executed and rep.grasp_success and not rep.flags
    assert np.allclose(rep.displacement[1], [0.12, -0.2, 0.0], atol=0.01), rep.displacement[1]


def test_pick_and_place_onto_another_object_stacks_it(backend):
    backend.load(SceneSpec([table(), cube("a", 0.5, 0.1), cube("b", 0.55, -0.15, size=0.07), cube("c", 0.4, -0.3)]))
    rep = backend.execute_skill("pick_place", 1, (0.05, -0.25, 0.07))
    assert rep.executed and not rep.flags
    rel = backend.relations()
    assert rel.holds("above", 1, 2) and rel.holds("in_contact", 1, 2)


def drawer_scene(opening=0.0):
    return SceneSpec([
        ObjectSpec("cab", "cabinet", (0.4, 0.45, 0.35), (0.6, 0.0, 0.175), drawer_opening=opening),
        table("t2", x=0.55, y=0.75, size=(0.5, 0.6)),
        cube("a", 0.5, 0.7), cube("b", 0.6, 0.8), cube("c", 0.45, 0.9),
    ])


def test_drawer_opens_and_closes_by_the_commanded_distance(backend):
    backend.load(drawer_scene())
    drawer = seg(backend, "cab_drawer")
    assert not backend.relations().holds("drawer_open", drawer)
    rep = backend.execute_skill("open_drawer", drawer, (0.15,))
    assert rep.executed and not rep.flags
    assert abs(backend.drawer_openings()[drawer] - 0.15) < 0.01
    assert backend.relations().holds("drawer_open", drawer)
    rep = backend.execute_skill("close_drawer", drawer, (0.1,))
    assert abs(backend.drawer_openings()[drawer] - 0.05) < 0.01
    rep = backend.execute_skill("close_drawer", drawer, (0.3,))  # the joint limit stops it
    assert abs(backend.drawer_openings()[drawer]) < 0.005
    assert not backend.relations().holds("drawer_open", drawer)


def test_dropped_object_falls(backend):
    backend.load(SceneSpec([table(), cube("a", 0.5, 0.0, z_bottom=0.8), cube("b", 0.7, 0.3), cube("c", 0.4, -0.3)]),
                 settle=False)
    z0 = backend.segment_state().box_lower[1, 2]
    backend.settle()
    assert z0 > 0.79 and abs(backend.segment_state().box_lower[1, 2] - TABLE_TOP) < 0.005
    # Released in mid-air by pick_place: falls back onto the table.
    rep = backend.execute_skill("pick_place", 2, (0.0, 0.0, 0.3))
    assert rep.grasp_success and abs(rep.displacement[2, 2]) < 0.005
    assert abs(backend.segment_state().box_lower[2, 2] - TABLE_TOP) < 0.005


def test_same_skill_from_same_state_is_deterministic(backend):
    backend.load(bin_with_items())
    s0 = backend.get_state()
    backend.execute_skill("push", 4, (2.0, 0.1))
    a = backend.get_state()
    backend.set_state(s0)
    backend.execute_skill("push", 4, (2.0, 0.1))
    assert np.array_equal(a, backend.get_state())


def test_skill_parameters_outside_the_box_are_refused(backend):
    backend.load(bin_with_items())
    with pytest.raises(SkillError, match="outside its box"):
        backend.execute_skill("push", 4, (0.0, 0.5))
    with pytest.raises(SkillError, match="not finite"):
        backend.execute_skill("pick_place", 4, (0.0, float("nan"), 0.0))
    with pytest.raises(SkillError, match="takes 3 parameters"):
        backend.execute_skill("pick_place", 4, (0.0, 0.1))
    with pytest.raises(SkillError, match="unknown skill"):
        backend.execute_skill("throw", 4, (0.0,))
    with pytest.raises(SkillError, match="movable target"):
        backend.execute_skill("push", 0, (0.0, 0.1))
    with pytest.raises(SkillError, match="drawer target"):
        backend.execute_skill("open_drawer", 4, (0.1,))
    with pytest.raises(SkillError, match="segment index"):
        backend.execute_skill("push", 99, (0.0, 0.1))


def test_grasp_of_a_covered_object_is_reported_not_faked(backend):
    scene = SceneSpec([table(), cube("a", 0.5, 0.0), cube("b", 0.5, 0.0, size=0.06, z_bottom=TABLE_TOP + 0.05),
                       cube("c", 0.4, -0.3)])
    backend.load(scene)
    rep = backend.execute_skill("pick_place", 1, (0.0, 0.2, 0.0))
    assert not rep.executed and rep.grasp_success is False and "covered by b" in rep.message
    assert np.abs(rep.displacement).max() < 0.005


@pytest.mark.parametrize("bad, match", [
    (lambda s: s.objects.append(cube("x", 0.5, 0.1)), "overlap"),
    (lambda s: s.objects.append(cube("x", 2.5, 0.0)), "outside the workspace"),
    (lambda s: s.objects.append(ObjectSpec("x", "teapot", (0.1, 0.1, 0.1), (0.5, 0.3, 0.6))), "unknown"),
    (lambda s: s.objects.append(cube("x", float("nan"), 0.0)), "non-finite"),
    (lambda s: s.objects.append(cube("a", 0.5, 0.3)), "duplicate"),
    (lambda s: s.objects.append(ObjectSpec("x", "cuboid", (0.0, 0.1, 0.1), (0.5, 0.3, 0.6))), "exceed"),
])
def test_invalid_scenes_are_rejected_with_a_clear_error(backend, bad, match):
    scene = SceneSpec([table(), cube("a", 0.5, 0.1)])
    bad(scene)
    with pytest.raises(SceneError, match=match):
        backend.load(scene)


def test_movable_count_is_enforced_when_asked(cfg):
    scene = SceneSpec([table(), cube("a", 0.5, 0.1)])
    with pytest.raises(SceneError, match="movable objects"):
        scene.validate(cfg, movable_range=(3, 7))


def test_instability_is_flagged(backend):
    backend.load(SceneSpec([table(), cube("a", 0.5, 0.1)]))
    backend.data.qvel[:3] = [0.0, 0.0, 40.0]  # an object flung upwards: leaves the workspace
    backend.step(100)
    assert any("left the workspace" in f or "moving" in f for f in backend.stability_issues())


# ---------------------------------------------------------------- perturbed executions (paper 002 §III-B)
def test_a_gripper_that_never_closes_leaves_the_object_where_it_was(backend):
    from f2p_sim.skills import ExecutionPerturbation

    backend.load(bin_with_items())
    rep = backend.execute_skill("pick_place", seg(backend, "bin"), (0.0, -0.3, 0.0),
                                perturbation=ExecutionPerturbation(close_gripper=False))
    assert rep.executed and rep.grasp_success is False
    assert np.linalg.norm(rep.displacement, axis=1).max() < 0.005


def test_a_grasp_beside_the_object_closes_on_air_and_one_on_it_holds(backend):
    from f2p_sim.skills import ExecutionPerturbation

    scene = SceneSpec([table(), cube("a", 0.45, 0.0)])
    for offset, held in (((0.0, 0.06), False), ((0.01, 0.01), True)):
        backend.load(scene)
        rep = backend.execute_skill("pick_place", 1, (0.15, 0.0, 0.0),
                                    perturbation=ExecutionPerturbation(contact_offset=offset))
        assert rep.grasp_success is held, (offset, rep)
        assert bool(rep.displacement[1, 0] > 0.1) == held


def test_a_slipping_grasp_drops_the_object_short_of_the_placement(backend):
    from f2p_sim.skills import ExecutionPerturbation

    scene = SceneSpec([table(size=(0.6, 1.2)), cube("a", 0.45, -0.4)])
    backend.load(scene)
    rep = backend.execute_skill("pick_place", 1, (0.0, 0.7, 0.0), perturbation=ExecutionPerturbation(slip_at=0.3))
    assert rep.grasp_success                              # it was lifted, then lost on the way
    assert 0.05 < rep.displacement[1, 1] < 0.5, rep.displacement[1]


def test_perturbations_are_validated():
    from f2p_sim.skills import ExecutionPerturbation

    for bad in ({"slip_at": 1.0}, {"slip_at": 0.0}, {"contact_offset": (0.1,)}, {"contact_offset": (np.nan, 0.0)}):
        with pytest.raises(ValueError):
            ExecutionPerturbation(**bad)
    assert ExecutionPerturbation().is_none and not ExecutionPerturbation(close_gripper=False).is_none


def test_the_simulated_robot_slips_at_the_rate_of_its_execution_noise():
    from f2p_common.interfaces import SkillCall
    from f2p_sim.config import load_world_config
    from f2p_sim.robot import SimRobot, SimRobotError
    from f2p_sim.skills import make_slip

    world = load_world_config()
    with pytest.raises(SimRobotError, match="probability"):
        SimRobot(world, execution_noise=1.5)
    slips = []
    for noise in (0.0, 1.0):
        robot = SimRobot(world, seed=3, execution_noise=noise)
        robot.reset_task("transport", 3, 1000)
        out = robot.execute(SkillCall("pick_place", ("bin_2",), (0.0, 0.66, 0.01)))
        slips.append(out.slip)
    assert slips[0] == "" and slips[1]
    with pytest.raises(ValueError, match="needs a grasp"):
        make_slip("no_close", np.random.default_rng(0), "push", (0.0, 0.1), (0.05, 0.05))
