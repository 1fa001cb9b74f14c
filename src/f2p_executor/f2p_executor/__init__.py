"""f2p_executor: the task executor node (RunTask: observe, plan, verify, execute, detect failures,
replan); ``supervision`` holds its decisions without ROS."""
