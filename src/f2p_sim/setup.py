from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", sorted(glob("config/*"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description='the MuJoCo world (programmatic scenes, floating-gripper skills with contact physics, ray-cast segmented clouds, ground-truth relations), the Fail2Progress tasks and their reference solutions, Real2Sim from segmented clouds, simulated task episodes, step-wise skill control, and the sim_robot node; the world config as package data.',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_robot = f2p_sim.sim_robot_node:main",
            "sim_arm = f2p_sim.sim_arm_node:main",
        ],
    },
)
