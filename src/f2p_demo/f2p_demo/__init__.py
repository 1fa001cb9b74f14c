"""f2p_demo: the demos, on top of both sides (robot graph, simulator, learner).

Owns: ``live_demo`` (``f2p-demo``, what ``make demo`` runs: the sim graph over ROS 2 fails, the
learner learns from the event, the robot swaps and succeeds), its ROS client ``graph_client``, and
``demo`` (the same loop in one process, without ROS).
May import: every other f2p package (layer 4); nothing imports it.
"""
