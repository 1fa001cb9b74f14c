from setuptools import find_packages, setup

package_name = "f2p_failure"

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
    description="failure events F = (O_F, R_F, phi_F, R'_F) (paper 000 §4) with their checked on-disk form, and failure detection (observed against predicted relations).",
    license="Apache-2.0",
)
