"""f2p_planner: the planner node (PlanTask, SwapModel, rollback, ModelInfo) over the skill-effect
model; ``model_slot`` (admitting, swapping and rolling back checkpoints) and ``planning`` (a task
from a segmented scene) are its ROS-free parts."""
