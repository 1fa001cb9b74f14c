from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_afil"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/models", sorted(glob("models/*"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description="AFIL (paper 003): a failure-aware flow-matching skill controller with dual action generators",
    license="Apache-2.0",
)
