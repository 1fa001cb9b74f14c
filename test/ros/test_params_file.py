"""Each robot's params YAML (f2p_bringup config/<robot>.yaml): one ``ros__parameters`` section per
node, a section for every node of the robot's graph, every key a parameter that node declares
and every value one its check accepts (a typo would otherwise leave a default silently in force)."""
import pytest
import yaml

from f2p_bringup import GRAPHS, bag_recorder_node, graph, params_file
from f2p_executor import failure_recorder_node, task_executor_node
from f2p_guardian import guardian_node
from f2p_perception import cloud_filter_node, perception_node
from f2p_planner import planner_node
from f2p_relations import relation_detector_node
from f2p_sim import sim_arm_node, sim_robot_node
from f2p_skills import skill_server_node
from f2p_learning import learner_node
from f2p_viz import visualizer_node

NODES = {"cloud_filter": cloud_filter_node.PARAMS, "perception": perception_node.PARAMS,
         "relation_detector": relation_detector_node.PARAMS, "sim_robot": sim_robot_node.PARAMS,
         "planner": planner_node.PARAMS, "task_executor": task_executor_node.PARAMS,
         "visualizer": visualizer_node.PARAMS, "failure_recorder": failure_recorder_node.PARAMS,
         "learner": learner_node.PARAMS, "bag_recorder": bag_recorder_node.PARAMS, "guardian": guardian_node.PARAMS,
         "skill_server": skill_server_node.PARAMS, "sim_arm": sim_arm_node.PARAMS}


@pytest.mark.parametrize("robot", sorted(GRAPHS))
def test_every_node_of_the_graph_has_a_section_and_every_section_is_a_node(robot):
    doc = yaml.safe_load(params_file(robot).read_text())
    assert {n.name for n in graph(robot)} <= set(doc) <= set(NODES)
    assert all(set(section) == {"ros__parameters"} for section in doc.values())


@pytest.mark.parametrize("robot, node", [(r, n) for r in sorted(GRAPHS)
                                         for n in sorted(yaml.safe_load(params_file(r).read_text()))])
def test_sections_set_only_declared_parameters_with_valid_values(robot, node):
    section = yaml.safe_load(params_file(robot).read_text())[node]["ros__parameters"]
    declared = {p.name: p for p in NODES[node]}
    assert set(section) <= set(declared), sorted(set(section) - set(declared))
    for name, value in section.items():
        p = declared[name]
        assert type(value) is type(p.default) or (isinstance(p.default, float) and isinstance(value, (int, float))), \
            (name, value, p.default)
        assert p.check is None or p.check(value) is None, (name, value)
