from setuptools import find_packages, setup

package_name = "f2p_relations"

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
    description="the one definition of the paper 000 A.9 relations, computed from object boxes (the geometric relation detector, the simulator's ground truth).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "relation_detector = f2p_relations.relation_detector_node:main",
        ],
    },
)
