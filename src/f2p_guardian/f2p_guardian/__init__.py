"""Guardian (paper 002): plan and execution verification with reasoning, ROS-free."""
