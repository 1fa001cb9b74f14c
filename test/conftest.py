"""Shared pytest fixtures: loopback-only ROS, one domain per run, a spinning executor, one
torch thread.

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

#: Fixtures shared by several test folders (``sim_graph``: the simulated robot's graph run by f2p-bringup).
pytest_plugins = ("support.bringup",)


@pytest.fixture
def ros():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op torch thread per test: on a 2-core machine shared with other work, torch's
    thread pool oversubscribes and small ops slow down ~20x; one thread keeps the suite fast and
    stable. (torch is imported only where a test already did.)"""
    import sys
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pytest_addoption(parser):
    parser.addoption("--other-workspaces", action="store_true",
                     help="run the tests that use another f2p workspace (the other ROS distro's, the robot's "
                          "CPU-only one); make test-distros and make test-robot-cpu build it and pass this")


def pytest_collection_modifyitems(config, items):
    """Tests that use another workspace need it built (the other distro's: ~9 GB more):
    ``make test-distros`` and ``make test-robot-cpu`` run them, ``make test`` leaves them out
    (deselected, and said in the summary)."""
    if config.getoption("--other-workspaces"):
        return
    left = [i for i in items if i.get_closest_marker("other_workspace")]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [i for i in items if not i.get_closest_marker("other_workspace")]
