"""The QoS profiles f2p's topics use, by what a topic carries (one place to read and change them).

================  ==========================================================================
``latched()``     state that a late joiner must see at once (the current scene, relations, plan,
                  model info, progress): reliable, transient local, the last ``depth``
``events()``      every message counts and a subscriber that is there gets each one (failure
                  events, learner progress, markers): reliable, volatile, a queue of ``depth``
``tf()``          ``/tf`` as tf2 subscribes and publishes it: reliable, volatile, 100 deep;
                  ``/tf_static`` is ``latched()``: its one message holds every static transform
``sensor()``      camera streams: keep the last ``depth``, reliable by default — a 640x480 cloud
                  is ~7 MB, and best effort drops nearly every one over loopback DDS
                  (benchmarks/results/cloud_delivery.md); ``best_effort=True`` for a driver that
                  only offers it
================  ==========================================================================
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def latched(depth: int = 1) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def events(depth: int = 10) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def sensor(depth: int = 10, best_effort: bool = False) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def tf() -> QoSProfile:
    return events(100)
