"""f2p_planner: the ``planner`` node (PlanTask, SwapModel, rollback, ModelInfo; robot side).

Owns: ``model_slot`` (admitting, swapping and rolling back checkpoints) and ``planning`` (a task
from a segmented scene), both ROS-free, and the node over them.
May import: ``f2p_common``, ``f2p_skill_effect``; ROS only in the node.
"""
