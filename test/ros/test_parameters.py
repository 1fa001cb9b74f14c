"""Typed node parameters: every numeric parameter of every node has its range (or its choices) in
the descriptor ``ros2 param describe`` shows, and ``ros2 param set`` is validated — a bad value
refused with the reason, a parameter read at configure refused while the node is configured, a
live one applied at once — through the nodes' real parameter services over DDS."""
from __future__ import annotations

import importlib

import pytest
from lifecycle_msgs.msg import Transition
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters

from f2p_common.parameters import OneOf, Param, ParameterError, Range, validate
from f2p_ros.parameters import descriptor
from support.ros import WAIT_S, LifecycleClient, wait_future

#: Every node module with a parameter table, and the table's name.
TABLES = {"f2p_executor.task_executor_node": "PARAMS", "f2p_executor.failure_recorder_node": "PARAMS",
          "f2p_sim.sim_robot_node": "PARAMS", "f2p_perception.cloud_filter_node": "PARAMS",
          "f2p_perception.perception_node": "PARAMS", "f2p_bringup.bag_recorder_node": "PARAMS",
          "f2p_learning.jobs": "PARAMS", "f2p_planner.planner_node": "PARAMS",
          "f2p_relations.relation_detector_node": "PARAMS", "f2p_guardian.guardian_node": "PARAMS",
          "f2p_viz.visualizer_node": "PARAMS"}


@pytest.mark.parametrize("module", sorted(TABLES))
def test_every_numeric_parameter_has_its_range_or_choices_in_the_descriptor(module):
    params: list[Param] = getattr(importlib.import_module(module), TABLES[module])
    for p in params:
        d = descriptor(p)
        assert p.description and p.description in d.description
        assert ("[live" in d.description) == p.live and ("[read at configure]" in d.description) != p.live
        if isinstance(p.default, bool) or not isinstance(p.default, (int, float)):
            continue
        assert isinstance(p.check, (Range, OneOf)), f"{module}: {p.name} has no range"
        if isinstance(p.check, Range):
            (r,) = d.integer_range if isinstance(p.default, int) else d.floating_point_range
            assert r.from_value <= p.default <= r.to_value and p.check(p.default) is None, p.name
        else:
            assert str(list(p.check.choices)) in d.description


def test_range_checks_say_what_is_wrong():
    assert Range(0, low_open=True)(0.0) == "must be > 0" and Range(1)(0) == "must be >= 1"
    assert Range(0.0, 1.0)(1.5) == "must be in [0, 1]" and Range()(float("nan")) == "must be finite"
    assert Range(0)("3") == "must be a number" and Range(0)(True) == "must be a number"
    with pytest.raises(ParameterError, match=r"nope: not a parameter of planner; samples=1: must be >= 2"):
        validate([Param("samples", 256, "", Range(2))], {"samples": 1, "nope": 3}, "planner")


def _value(v) -> ParameterValue:
    if isinstance(v, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
    if isinstance(v, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)


def test_param_set_over_dds_is_validated_refused_or_applied(ros, tmp_path):
    from f2p_executor.task_executor_node import TaskExecutorNode
    node = ros.add(TaskExecutorNode(context=ros.context))
    probe = ros.node("param_probe")
    setter = probe.create_client(SetParameters, "/task_executor/set_parameters")
    describe = probe.create_client(DescribeParameters, "/task_executor/describe_parameters")
    assert setter.wait_for_service(timeout_sec=WAIT_S) and describe.wait_for_service(timeout_sec=WAIT_S)

    def set_(name, value):
        (r,) = wait_future(setter.call_async(SetParameters.Request(
            parameters=[ParameterMsg(name=name, value=_value(value))]))).results
        return r

    (d,) = wait_future(describe.call_async(DescribeParameters.Request(names=["observe_timeout_s"]))).descriptors
    assert d.floating_point_range[0].from_value == 0.0 and "[live" in d.description
    (d,) = wait_future(describe.call_async(DescribeParameters.Request(names=["max_plan_refusals"]))).descriptors
    assert d.integer_range[0].from_value == 0
    assert set_("verifier", "verify_plan").successful                # unconfigured: read at the next configure
    r = set_("max_step_retries", -1)                                  # out of range: refused by rcl's range
    assert not r.successful
    r = set_("min_goal_probability", 1.5)
    assert not r.successful and "1.5" in r.reason
    lc = LifecycleClient(probe, "task_executor")
    assert lc.transition(Transition.TRANSITION_CONFIGURE)
    assert node.v["verifier"] == "verify_plan"
    r = set_("verifier", "other")                                     # configured: would do nothing, refused
    assert not r.successful and "read at configure" in r.reason
    assert node.get_parameter("verifier").value == "verify_plan"
    r = set_("observe_timeout_s", 3.5)                                # live: applied at once
    assert r.successful and node.v["observe_timeout_s"] == 3.5 and node._runner_config().max_step_retries == 2
    assert set_("max_step_retries", 0).successful and node._runner_config().max_step_retries == 0
