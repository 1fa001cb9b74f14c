"""Guardian's symbolic verifier (paper 002 eq. 1-2 over the skill library's effects) on scenes
built in code: every planning and execution category is named, bad queries say why."""
import numpy as np
import pytest

from f2p_common.interfaces import SkillCall
from f2p_guardian.language import describe_goal, describe_step
from f2p_guardian.symbolic import SymbolicVerifier
from f2p_guardian.taxonomy import SUCCESS, Verdict, format_answer, parse_answer
from f2p_guardian.verifier import ExecutionQuery, PlanQuery, QueryError, check_views
from f2p_guardian.world import SceneFacts, predict_step

BOXES = {   # id: (class, lower, upper) — two tables, a bin holding an item, a cup, a cube on a cube
    "table_a": ("table", (0.30, -0.57, 0.0), (0.80, -0.07, 0.45)),
    "table_b": ("table", (0.30, 0.09, 0.0), (0.80, 0.59, 0.45)),
    "bin": ("bin", (0.45, -0.42, 0.45), (0.65, -0.22, 0.55)),
    "item_0": ("cuboid", (0.50, -0.35, 0.46), (0.54, -0.31, 0.52)),
    "cup": ("cup", (0.60, -0.15, 0.45), (0.68, -0.09, 0.53)),
    "low": ("cuboid", (0.33, -0.20, 0.45), (0.38, -0.15, 0.50)),
    "high": ("cuboid", (0.34, -0.19, 0.50), (0.37, -0.16, 0.53)),
}


def facts(**moved) -> SceneFacts:
    ids = list(BOXES)
    lower = np.array([BOXES[i][1] for i in ids], float)
    upper = np.array([BOXES[i][2] for i in ids], float)
    for name, shift in moved.items():
        k = ids.index(name)
        lower[k] += shift
        upper[k] += shift
    return SceneFacts(tuple(ids), tuple(BOXES[i][0] for i in ids), lower, upper)


def pp(target, dx, dy, dz=0.01):
    return SkillCall("pick_place", (target,), (dx, dy, dz))


GOAL = [("inside", "item_0", "bin"), ("above", "bin", "table_b")]


def verify_plan(plan, goal=GOAL):
    q = PlanQuery(describe_goal(goal), plan, facts(), goal)
    return SymbolicVerifier().verify_plan(q)


def test_a_correct_plan_is_accepted_with_its_reasoning():
    v = verify_plan([pp("bin", 0.0, 0.55)])
    assert v.success and v.category == SUCCESS and v.mode == "plan"
    assert "holding item_0" in v.reasoning and "ends on table_b" in v.reasoning
    assert parse_answer(v.answer, "plan") == (v.reasoning, True, SUCCESS)
    assert v.latency_s < 0.01


@pytest.mark.parametrize("plan, goal, category", [
    ([pp("item_0", 0.0, 0.55)], GOAL, "wrong_object"),
    ([pp("bin", 0.0, 0.25)], GOAL, "wrong_placement"),
    ([pp("bin", 0.0, 0.55), pp("bin", 0.0, -0.55)], GOAL, "contradictory_subtasks"),
    ([pp("bin", 0.0, 0.55)], GOAL + [("above", "cup", "table_b")], "missing_subtask"),
    ([pp("low", 0.0, 0.6), pp("high", 0.0, 0.6)], [("above", "low", "table_b"), ("above", "high", "table_b")],
     "wrong_order"),
])
def test_each_planning_failure_is_named(plan, goal, category):
    v = verify_plan(plan, goal)
    assert not v.success and v.category == category, v.reasoning


def test_the_effects_carry_contents_and_refuse_a_covered_grasp():
    f = facts()
    out = predict_step(f, pp("bin", 0.0, 0.55))
    assert out.ok and out.riders == ["item_0"] and out.support == "table_b"
    assert out.after.relations().holds("inside", f.index("item_0"), f.index("bin"))
    assert "high stands on it" in predict_step(f, pp("low", 0.0, 0.6)).refused
    push = predict_step(f, SkillCall("push", ("low",), (np.pi / 2, 0.1)))
    assert push.ok and np.allclose(push.after.center[f.index("low")] - f.center[f.index("low")], [0, 0.1, 0])


@pytest.mark.parametrize("dy, stable", [(0.55, True), (0.47, False), (0.43, False), (0.36, False)])
def test_a_container_put_down_at_a_tables_edge_or_over_the_gap_is_refused(dy, stable):
    """The 20 cm bin's centre 14 cm inside table_b's edge is stable (5 cm, a quarter of it, and
    3 cm: a grasp lands within two, a perceived box is a centimetre off); 6 or 2 cm inside, it
    hangs over the edge; 5 cm short of it, it bridges the gap between the tables: all tip, and
    the plan is refused."""
    out = predict_step(facts(), pp("bin", 0.0, dy))
    assert out.support == "table_b" and out.fell != stable
    v = verify_plan([pp("bin", 0.0, dy)])
    assert v.success == stable
    if not stable:
        assert v.category == "wrong_placement" and "falls or tips" in v.reasoning, v.reasoning


def test_between_level_tables_side_by_side_a_box_rests_on_the_one_under_its_centre():
    ids = ("table_a", "table_b", "bin")
    lower = np.array([(0.3, -0.5, 0.0), (0.3, 0.0, 0.0), (0.45, -0.45, 0.45)])
    upper = np.array([(0.8, 0.0, 0.451), (0.8, 0.5, 0.45), (0.65, -0.15, 0.55)])
    f = SceneFacts(ids, ("table", "table", "bin"), lower, upper)
    out = predict_step(f, pp("bin", 0.0, 0.42))                  # centre at y = 0.12, footprint on both
    assert out.support == "table_b" and not out.fell


def _execution(after: SceneFacts, step=None) -> Verdict:
    step = step or pp("bin", 0.0, 0.55)
    return SymbolicVerifier().verify_execution(ExecutionQuery(describe_goal(GOAL), step, facts(), after))


def test_each_execution_outcome_is_named():
    f = facts()
    done = predict_step(f, pp("bin", 0.0, 0.55)).after
    assert _execution(done).category == SUCCESS
    assert _execution(facts()).category == "no_progress"
    assert _execution(facts(bin=[0.002, 0.0, 0.0])).category == "no_gripper_close"
    assert _execution(facts(cup=[0.0, 0.6, 0.0])).category == "wrong_object"
    dropped = facts(bin=[0.0, 0.2, -0.45], item_0=[0.0, 0.2, -0.45])            # slipped, fell between the tables
    assert _execution(dropped).category == "imprecise_grasp"
    elsewhere = facts(bin=[-0.12, 0.6, 0.0], item_0=[-0.12, 0.6, 0.0])
    v = _execution(elsewhere)
    assert v.category == "wrong_placement" and not v.success, v.reasoning
    # What happened is not what the (other) subtask text asks.
    assert not _execution(done, step=pp("cup", 0.0, 0.6)).success


def test_bad_queries_are_refused_with_a_reason():
    sym = SymbolicVerifier()
    with pytest.raises(QueryError, match="empty"):
        sym.verify_plan(PlanQuery("x", [], facts(), GOAL))
    with pytest.raises(QueryError, match="unknown object 'mug'"):
        sym.verify_plan(PlanQuery("x", [pp("mug", 0.0, 0.5)], facts(), GOAL))
    with pytest.raises(QueryError, match="unknown object 'mug'"):
        sym.verify_plan(PlanQuery("x", [pp("bin", 0.0, 0.5)], facts(), [("above", "mug", "table_b")]))
    with pytest.raises(QueryError, match="needs the scene"):
        sym.verify_plan(PlanQuery("x", [pp("bin", 0.0, 0.5)]))
    other = SceneFacts(("bin",), ("bin",), np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(QueryError, match="differ in objects"):
        sym.verify_execution(ExecutionQuery("x", pp("bin", 0.0, 0.5), facts(), other))
    with pytest.raises(ValueError, match="unknown skill|skill"):
        SkillCall("fly", ("bin",), ())
    image = np.zeros((120, 160, 3), np.uint8)
    check_views([image] * 3, 3, 120, 160, "initial")
    for images, match in (([image] * 2, "2 camera view"), ([image] * 4, "4 camera view"),
                          ([np.zeros((60, 80, 3), np.uint8)] * 3, "80x60"),
                          ([image[..., 0]] * 3, "not an RGB")):
        with pytest.raises(QueryError, match=match):
            check_views(images, 3, 120, 160, "initial")
    with pytest.raises(ValueError, match="NaN|finite"):
        SceneFacts(("a",), ("cup",), np.full((1, 3), np.nan), np.ones((1, 3)))


def test_the_answer_format_round_trips_and_rejects_garbage():
    text = format_answer("the cup did not move", False, "no_gripper_close")
    assert parse_answer(text, "execution") == ("the cup did not move", False, "no_gripper_close")
    assert parse_answer(format_answer("", True, SUCCESS), "plan") == ("", True, SUCCESS)
    for bad in ("<answer>maybe</answer> <category>success</category>", "<think>unfinished",
                "<answer>yes</answer> <category>wrong_object</category>",
                "<answer>no</answer> <category>no_gripper_close</category>"):
        with pytest.raises(ValueError):
            parse_answer(bad, "plan")
    with pytest.raises(ValueError):
        Verdict("plan", True, "wrong_object", 0.5, "")


def test_step_texts_say_where_things_go():
    assert describe_step(pp("bin", 0.0, 0.55), facts()).endswith("0.55 m left, onto table_b")
    assert "into bin" in describe_step(pp("cup", -0.1, -0.2), facts())
