"""Shared fixtures for the simulated-world tests: the world config and hand-built scenes.

Scenes are built in code (no XML): a table in front of the robot (x = 0.55 m), objects
resting on its top at z = 0.45 m.
"""
import pytest

from f2p_sim.config import load_world_config
from f2p_sim.scene import ObjectSpec, SceneSpec

TABLE_TOP = 0.45


def table(name="table", x=0.55, y=0.0, size=(0.6, 0.8)):
    return ObjectSpec(name, "table", (size[0], size[1], TABLE_TOP), (x, y, TABLE_TOP / 2))


def cube(name, x, y, size=0.05, z_bottom=TABLE_TOP, height=None):
    h = size if height is None else height
    return ObjectSpec(name, "cuboid", (size, size, h), (x, y, z_bottom + h / 2))


@pytest.fixture(scope="session")
def cfg():
    return load_world_config()


@pytest.fixture
def backend(cfg):
    from f2p_sim.mujoco_backend import MujocoBackend
    return MujocoBackend(cfg)


def bin_with_items(bin_x=0.5, bin_y=0.15):
    """Table, a bin (1 cm floor) with two cubes inside, one free cube elsewhere."""
    floor = TABLE_TOP + 0.01
    return SceneSpec([
        table(),
        ObjectSpec("bin", "bin", (0.26, 0.3, 0.09), (bin_x, bin_y, TABLE_TOP + 0.045)),
        cube("a", bin_x, bin_y - 0.06, z_bottom=floor),
        cube("b", bin_x, bin_y + 0.06, height=0.06, z_bottom=floor),
        cube("c", 0.65, -0.3),
    ])
