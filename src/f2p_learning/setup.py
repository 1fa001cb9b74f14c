from setuptools import find_packages, setup

package_name = "f2p_learning"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description="f2p off-board learning from failures: SVGD-targeted datasets, fine-tuning, baselines (paper 000 §5-6)",
    license="Apache-2.0",
)
