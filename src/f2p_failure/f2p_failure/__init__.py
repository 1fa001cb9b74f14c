"""f2p_failure: failure events (paper 000 §4; robot side).

Owns: the event format (``events``: checksummed, crash-safe), the durable event queue and the
robot's spool location (``queue``), failure detection (``detection``).
May import: ``f2p_common``, numpy; no ROS.
"""
