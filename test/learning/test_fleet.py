"""One learner, many robots (f2p_learning.fleet): canary first, the fleet after the canary's
success or an approval, a regression rolls back and halts, late joiners serving the parent get
the child, and the rollouts outlive a restart."""
from __future__ import annotations

import pytest

from f2p_learning.fleet import Actions, Fleet, parse_robots


def _fleet(tmp_path, robots=("r1", "r2", "r3")) -> Fleet:
    fleet = Fleet(robots, tmp_path / "rollouts.json")
    for r in robots:
        fleet.note_serving(r, "parent")
    return fleet


def test_a_child_goes_to_its_canary_then_to_every_robot_serving_its_parent(tmp_path):
    fleet = _fleet(tmp_path, ("r1", "r2", "r3", "r4"))
    fleet.note_serving("r4", "other")                          # another lineage: not this child's fleet
    first = fleet.child_learned("child", "ab" * 32, "parent", "r2")
    assert first.push == ("r2",) and "canary" in first.note
    fleet.swap_answered("r2", "child", True)
    assert fleet.note_serving("r2", "child") == []
    assert fleet.task_done("r1", "parent", True) == Actions("parent")          # a task on the parent: nothing
    go = fleet.task_done("r2", "child", True)
    assert go.push == ("r1", "r3") and fleet.rollouts["child"].stage == "fleet"
    assert fleet.task_done("r2", "child", True).push == ()                     # once
    assert fleet.note_serving("r4", "parent")[0].push == ("r4",)              # joins the parent later: gets it
    assert fleet.rollouts["child"].robots == {"r2": "succeeded", "r1": "pushed", "r3": "pushed", "r4": "pushed"}


def test_a_failed_first_task_rolls_back_and_halts_until_approved(tmp_path):
    fleet = _fleet(tmp_path)
    fleet.child_learned("child", "ab" * 32, "parent", "r1")
    fleet.swap_answered("r1", "child", True)
    stop = fleet.task_done("r1", "child", False)
    assert stop.rollback == ("r1",) and stop.push == () and fleet.rollouts["child"].stage == "halted"
    fleet.note_serving("r1", "parent")                                         # rolled back
    assert fleet.task_done("r1", "child", True) == Actions("child")            # no longer on it: nothing
    go = fleet.approve("child", "operator:alice")
    assert go.push == ("r2", "r3") and fleet.rollouts["child"].approved_by == "operator:alice"
    with pytest.raises(KeyError):
        fleet.approve("nope", "operator:alice")


def test_a_refused_child_and_an_unknown_robot(tmp_path):
    fleet = _fleet(tmp_path)
    a = fleet.child_learned("child", "ab" * 32, "parent", "robot_not_in_the_fleet")
    assert a.push == ("r1",)                                                   # the first robot serving the parent
    fleet.swap_answered("r1", "child", False)
    assert fleet.rollouts["child"].robots["r1"] == "refused"
    assert fleet.task_done("r1", "child", True) == Actions("child")
    assert fleet.child_learned("child", "ab" * 32, "parent", "r1").push == ()  # learned twice: one rollout
    orphan = fleet.child_learned("child2", "cd" * 32, "nobody_serves_this", "ghost")
    assert orphan.push == () and "waits for an approval" in orphan.note
    assert fleet.note_serving("ghost", "parent") == []                        # not a robot of this fleet


def test_a_fleet_of_one_always_has_its_canary(tmp_path):
    fleet = Fleet(("robot",), tmp_path / "rollouts.json")              # its model_info not seen yet
    assert fleet.child_learned("child", "ab" * 32, "parent", "sim").push == ("robot",)


def test_rollouts_outlive_a_restart(tmp_path):
    fleet = _fleet(tmp_path)
    fleet.child_learned("child", "ab" * 32, "parent", "r1")
    fleet.swap_answered("r1", "child", True)
    again = Fleet(("r1", "r2", "r3"), tmp_path / "rollouts.json")
    for r in ("r2", "r3"):
        again.note_serving(r, "parent")
    again.note_serving("r1", "child")
    assert again.task_done("r1", "child", True).push == ("r2", "r3")


def test_parse_robots():
    assert parse_robots(["stretch1=/stretch1", "ur5a=/lab/ur5a", "solo"]) == {
        "stretch1": "/stretch1", "ur5a": "/lab/ur5a", "solo": ""}
    for bad, why in ((["a=/x", "a=/y"], "named twice"), (["=/x"], "robot id"), (["a=x"], "namespace"),
                     ([], "at least one"), (["a b"], "robot id")):
        with pytest.raises(ValueError, match=why):
            parse_robots(bad)
