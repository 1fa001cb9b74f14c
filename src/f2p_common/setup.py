from setuptools import find_packages, setup

package_name = "f2p_common"

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
    description="the one vocabulary of f2p (relations, object classes, skills with their parameter boxes and normalisation, each task's skill library), the dataclasses nodes exchange, the dataset format, and installed-resource lookup through the ament index.",
    license="Apache-2.0",
)
