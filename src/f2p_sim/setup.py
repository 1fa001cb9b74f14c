import os
from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_sim"
# The world config lives in the repository's top-level config/sim/ (one config tree);
# install it to share/f2p_sim/config/ where f2p_sim.config finds it.
config_files = sorted(glob(os.path.join("..", "..", "config", "sim", "*.yaml")))

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", config_files),
    ],
    install_requires=["setuptools", "numpy", "mujoco", "pyyaml", "tqdm"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description="f2p simulated world: MuJoCo scenes, skills, clouds, relations, tasks, Real2Sim, datagen",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-datagen = f2p_sim.datagen:main",
        ],
    },
)
