from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_guardian"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/models/guardian_vlm", sorted(glob("models/guardian_vlm/*"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description="Guardian (paper 002): plan and execution verification with reasoning; the shipped small verifier as package data",
    license="Apache-2.0",
    entry_points={"console_scripts": ["guardian = f2p_guardian.guardian_node:main"]},
)
