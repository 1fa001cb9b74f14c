from setuptools import find_packages, setup

package_name = "f2p_demo"

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
    description="the demos: the whole loop live over ROS 2 (f2p-demo: the sim graph fails, the learner learns, "
                "the robot swaps and succeeds) and in one process (python -m f2p_demo.demo).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-demo = f2p_demo.live_demo:main",
        ],
    },
)
