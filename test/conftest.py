"""Shared pytest fixtures: loopback-only ROS, one domain per run, a spinning executor.

Every ROS process these tests start keeps DDS on loopback
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in the run's own ROS_DOMAIN_ID, set before
rclpy creates any context.
"""
from __future__ import annotations

import os

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))

from support.ros import RosHarness  # noqa: E402  (after the environment is set)


@pytest.fixture
def ros():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.close()
