"""f2p_ros: the ROS side every f2p node shares — ``conversions`` (the one place where f2p
dataclasses and numpy arrays become ROS messages and back) and ``parameters`` (typed,
documented, validated node parameters)."""
