"""Launch the simulated UR5e cell (f2p_sim's sim_arm behind UR's and the Robotiq gripper's driver
interfaces) and f2p's ur5 robot graph on it: `ros2 launch f2p_bringup ur5_sim.launch.py` with
params_file:=..., sim_params_file:=..., namespace:=..., use_sim_time:=true|false,
autostart:=true|false, rviz:=true|false."""
from f2p_bringup.launch_graph import robot_launch_description


def generate_launch_description():
    return robot_launch_description("ur5", sim=True)
