"""One simulated task attempt (paper 000 §3-4): failure detection, the recorded event, and its
classification by Real2Sim replay."""
import dataclasses

import numpy as np
import pytest

from f2p_common.vocabulary import BINARY_RELATIONS, TASK_SKILLS, UNARY_RELATIONS
from f2p_failure.detection import DECISION_THRESHOLD, find_mismatches
from f2p_failure.events import FailureEvent, load_event, save_event
from f2p_learning.classify import classify_failure
from f2p_sim.episode import goal_literals, plan_targets, run_trial
from f2p_sim.tasks import Literal, make_task
from support.failure_fixtures import (TINY_VERSION, failure_event, failure_result, failure_task, observed_flipped,
                                      tiny_model, trial_config, world)


OUTCOMES = {"success", "failure_detected", "goal_not_reached", "unobservable", "no_plan"}
INSIDE = BINARY_RELATIONS.index("inside")
MOVABLE = UNARY_RELATIONS.index("movable")


# ------------------------------------------------------------------ detection
def step(n=3):
    return {"unary": np.zeros((n, len(UNARY_RELATIONS)), np.float32),
            "binary": np.zeros((n, n, len(BINARY_RELATIONS)), np.float32)}


def observed(n=3):
    return np.zeros((n, len(UNARY_RELATIONS)), bool), np.zeros((n, n, len(BINARY_RELATIONS)), bool)


def test_confident_wrong_prediction_is_a_mismatch():
    pred = step()
    pred["binary"][2, 1, INSIDE] = 0.9
    ou, ob = observed()
    out = find_mismatches(pred, ou, ob, [("inside", 2, 1)])
    assert len(out) == 1
    m = out[0]
    assert set(m) == {"predicate", "subject", "object", "predicted", "observed"}
    assert m["predicate"] == "inside" and m["subject"] == 2 and m["object"] == 1
    assert m["predicted"] == pytest.approx(0.9) and m["observed"] is False
    assert type(m["predicted"]) is float and type(m["subject"]) is int and type(m["object"]) is int


def test_agreeing_prediction_is_no_mismatch():
    pred = step()
    pred["binary"][2, 1, INSIDE] = 0.2
    ou, ob = observed()
    assert find_mismatches(pred, ou, ob, [("inside", 2, 1)]) == []
    # observed True and predicted at/above the threshold also agree
    ob[2, 1, INSIDE] = True
    pred["binary"][2, 1, INSIDE] = DECISION_THRESHOLD
    assert find_mismatches(pred, ou, ob, [("inside", 2, 1)]) == []
    # ... and just below it does not
    pred["binary"][2, 1, INSIDE] = np.nextafter(np.float32(DECISION_THRESHOLD), np.float32(0))
    assert [m["observed"] for m in find_mismatches(pred, ou, ob, [("inside", 2, 1)])] == [True]


def test_unary_literal():
    pred = step()
    pred["unary"][1, MOVABLE] = 0.3
    ou, ob = observed()
    ou[1, MOVABLE] = True
    out = find_mismatches(pred, ou, ob, [("movable", 1, None)])
    assert out == [{"predicate": "movable", "subject": 1, "object": None,
                    "predicted": pytest.approx(0.3), "observed": True}]
    assert set(out[0]) == {"predicate", "subject", "object", "predicted", "observed"}


def test_only_the_given_literals_are_compared():
    pred = step()
    pred["binary"][0, 1, INSIDE] = 0.95            # wrong, but not a goal literal
    pred["binary"][2, 1, INSIDE] = 0.95            # wrong and asked for
    pred["unary"][0, MOVABLE] = 0.1                # right
    ou, ob = observed()
    lits = [("inside", np.int64(2), np.int64(1)), ("movable", 0, None), ("inside", 1, 2)]
    out = find_mismatches(pred, ou, ob, lits)
    assert [(m["predicate"], m["subject"], m["object"]) for m in out] == [("inside", 2, 1)]
    assert type(out[0]["subject"]) is int
    assert find_mismatches(pred, ou, ob, []) == []


# ------------------------------------------------------------------ goals and targets
def test_plan_targets_of_a_fresh_transport_task():
    cfg, backend = world()
    task = make_task("transport", 3, 0, cfg)
    backend.load(task.scene)
    segs = backend.segments
    names, classes = [s.name for s in segs], [s.cls for s in segs]
    assert plan_targets(task, backend.relations(), names, classes) == [names.index("container")]


def test_goal_literals_index_segments():
    cfg, backend = world()
    task = make_task("transport", 3, 0, cfg)
    names = [o.name for o in task.scene.objects]
    lits = goal_literals(task, names)
    assert len(lits) == len(task.goal)
    for (pred, s, o), lit in zip(lits, task.goal):
        assert pred == lit.predicate and names[s] == lit.subject
        assert (o is None and lit.object is None) or names[o] == lit.object
    assert ("above", names.index("container"), names.index("table_b")) in lits
    negated = dataclasses.replace(task, goal=[*task.goal, Literal("inside", "item_0", "container", value=False)])
    with pytest.raises(ValueError, match="negated"):
        goal_literals(negated, names)


def test_goal_already_met_is_success_without_a_plan():
    cfg, backend = world()
    task = make_task("transport", 3, 0, cfg)
    done = dataclasses.replace(task, goal=[Literal("above", "container", "table_a")]
                               + [l for l in task.goal if l.predicate == "inside"])
    res = run_trial(tiny_model(), TINY_VERSION, done, backend, trial_config(), seed=0)
    assert res.outcome == "success" and res.success
    assert res.plan is None and res.failure is None and res.steps_executed == 0


# ------------------------------------------------------------------ a trial with a failure
def test_run_trial_records_a_valid_failure_event(tmp_path):
    res, task = failure_result(), failure_task()
    assert res.outcome in OUTCOMES
    assert res.outcome == "failure_detected" and not res.success
    ev = res.failure
    assert isinstance(ev, FailureEvent)
    ev.validate()
    assert len(res.plan.skeleton) == 1 and res.steps_executed == 1      # transport 3: move the container once
    assert ev.step_index == 0
    assert ev.model_version == TINY_VERSION
    assert ev.skill in TASK_SKILLS["transport"]
    names = ev.segment_ids
    assert ev.target == names.index("container")
    assert (ev.skill, ev.target) == tuple(res.plan.skeleton[0])
    assert ev.params == pytest.approx(res.plan.parameters[0])
    assert ev.context["task"] == "transport" and ev.context["task_seed"] == task.seed
    assert ev.context["trial_seed"] == 0
    # the mismatches are goal literals, and exactly those whose prediction disagrees
    goal = goal_literals(task, names)
    assert ev.mismatches
    for m in ev.mismatches:
        assert (m["predicate"], m["subject"], m["object"]) in goal
        assert (m["predicted"] >= DECISION_THRESHOLD) != m["observed"]
    again = find_mismatches({"unary": ev.predicted_after_unary, "binary": ev.predicted_after_binary},
                            ev.observed_after_unary, ev.observed_after_binary, goal)
    assert again == ev.mismatches
    # a lossless round trip
    back = load_event(save_event(ev, tmp_path))
    assert back == ev
    assert back.mismatches == ev.mismatches and back.context == ev.context


def test_run_trial_is_deterministic():
    cfg, backend = world()
    task = failure_task()
    a = run_trial(tiny_model(), TINY_VERSION, task, backend, trial_config(), seed=0)
    b = run_trial(tiny_model(), TINY_VERSION, task, backend, trial_config(), seed=0)
    assert a.outcome == b.outcome == "failure_detected"
    assert a.failure.event_id != b.failure.event_id                      # fresh ids
    assert dataclasses.replace(a.failure, event_id=b.failure.event_id) == b.failure
    assert a.failure.plan_id == f"transport-3-{task.seed}-0"


# ------------------------------------------------------------------ classification
def test_sim_reproduces_its_own_failure():
    _, backend = world()
    ev = failure_event()
    c = classify_failure(ev, backend)
    assert c.category == "incorrect_prediction"
    assert c.disagreeing == []
    assert len(c.agreeing) == len(ev.mismatches)
    assert all(a["simulated"] == a["observed"] for a in c.agreeing)
    assert c.sim_executed


def test_flipped_observation_is_a_sim_to_real_gap():
    _, backend = world()
    ev = observed_flipped(failure_event())
    ev.validate()
    c = classify_failure(ev, backend)
    assert c.category == "sim_to_real_gap"
    assert c.agreeing == []
    assert len(c.disagreeing) == len(ev.mismatches)
    assert all(d["simulated"] != d["observed"] for d in c.disagreeing)


def test_partly_flipped_is_still_a_gap():
    _, backend = world()
    ev = failure_event()
    only_first = observed_flipped(dataclasses.replace(ev, mismatches=ev.mismatches[:1]))
    mixed = dataclasses.replace(only_first, mismatches=[only_first.mismatches[0], *ev.mismatches[1:]])
    c = classify_failure(mixed, backend)
    assert c.category == "sim_to_real_gap"
    assert len(c.disagreeing) == 1 and len(c.agreeing) == len(ev.mismatches) - 1


def test_event_without_mismatches_cannot_be_classified():
    _, backend = world()
    with pytest.raises(ValueError, match="no mispredicted relation"):
        classify_failure(dataclasses.replace(failure_event(), mismatches=[]), backend)
