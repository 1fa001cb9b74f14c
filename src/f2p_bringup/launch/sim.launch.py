"""Launch f2p's robot graph for the `sim` robot (f2p_bringup.graph): `ros2 launch f2p_bringup sim.launch.py`
with params_file:=..., namespace:=..., use_sim_time:=true|false, autostart:=true|false."""
from f2p_bringup.launch_graph import robot_launch_description


def generate_launch_description():
    return robot_launch_description("sim")
