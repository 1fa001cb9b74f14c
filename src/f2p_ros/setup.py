from setuptools import find_packages, setup

package_name = "f2p_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description='the one conversion module between f2p dataclasses / numpy and ROS messages (PointCloud2, segmented scenes, relation states, plans, skill calls, failure events, model info), and typed, documented node parameters.',
    license="Apache-2.0",
)
