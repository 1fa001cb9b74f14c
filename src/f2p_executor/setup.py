from setuptools import find_packages, setup

package_name = "f2p_executor"

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
    description="the task executor and failure recorder nodes: run tasks, detect failures, ship failure events",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "task_executor = f2p_executor.task_executor_node:main",
            "failure_recorder = f2p_executor.failure_recorder_node:main",
        ],
    },
)
