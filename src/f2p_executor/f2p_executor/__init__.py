"""f2p_executor: running tasks and keeping their failures (robot side).

Owns: ``task_runner`` (the task state machine, ROS-free) and ``supervision`` (its decisions),
the ``task_executor`` node over them, and the ``failure_recorder`` node (the spool's one writer,
shipping events to the learner).
May import: ``f2p_common``, ``f2p_failure``; ROS only in the nodes.
"""
