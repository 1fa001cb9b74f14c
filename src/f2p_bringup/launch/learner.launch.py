"""Launch f2p's robot graph for the off-board `learner` (f2p_bringup.graph): `ros2 launch f2p_bringup learner.launch.py`
with params_file:=..., namespace:=..., use_sim_time:=true|false, autostart:=true|false."""
from f2p_bringup.launch_graph import robot_launch_description


def generate_launch_description():
    return robot_launch_description("learner")
