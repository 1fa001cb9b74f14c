from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", sorted(glob("config/*"))),
        ("share/" + package_name + "/launch", sorted(glob("launch/*.launch.py"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description='one node-parameter YAML per robot (node_name: ros__parameters layout) as package data.',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-bringup = f2p_bringup.runner:main",
            "bag_recorder = f2p_bringup.bag_recorder_node:main",
        ],
    },
)
