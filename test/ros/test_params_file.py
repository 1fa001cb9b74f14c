"""Each robot's params YAML (f2p_bringup config/<robot>.yaml, and config/<robot>_sim.yaml over it
for the simulated drivers): one ``ros__parameters`` section per node, a section for every node of
the robot's graph, every key a parameter that node declares and every value one its check
accepts (a typo would otherwise leave a default silently in force)."""
import pytest
import yaml

from f2p_bringup import GRAPHS, bag_recorder_node, graph
from f2p_bringup.graph import SIM_DRIVERS, params_files
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


#: (robot, sim): every graph, and every robot's graph on its simulated drivers
CONFIGS = [(r, False) for r in sorted(GRAPHS)] + [(r, True) for r in sorted(SIM_DRIVERS)]
FILES = sorted({path for robot, sim in CONFIGS for path in params_files(robot, sim)})


@pytest.mark.parametrize("robot, sim", CONFIGS)
def test_every_node_of_the_graph_has_a_section_and_every_section_is_a_node(robot, sim):
    docs = [yaml.safe_load(path.read_text()) for path in params_files(robot, sim)]
    assert {n.name for n in graph(robot, sim)} <= set().union(*docs) <= set(NODES)
    assert all(set(section) == {"ros__parameters"} for doc in docs for section in doc.values())


@pytest.mark.parametrize("path, node", [(p, n) for p in FILES for n in sorted(yaml.safe_load(p.read_text()))],
                         ids=lambda x: x.name if hasattr(x, "name") else x)
def test_sections_set_only_declared_parameters_with_valid_values(path, node):
    section = yaml.safe_load(path.read_text())[node]["ros__parameters"]
    declared = {p.name: p for p in NODES[node]}
    assert set(section) <= set(declared), sorted(set(section) - set(declared))
    for name, value in section.items():
        p = declared[name]
        assert type(value) is type(p.default) or (isinstance(p.default, float) and isinstance(value, (int, float))), \
            (name, value, p.default)
        assert p.check is None or p.check(value) is None, (name, value)
