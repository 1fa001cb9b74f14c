from setuptools import find_packages, setup

package_name = "f2p_viz"

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
    description="what the stack sees, believes, does and got wrong: rviz markers (visualizer) and a browser view of bags or the live graph (f2p-view)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "visualizer = f2p_viz.visualizer_node:main",
            "f2p-view = f2p_viz.view_node:main",
        ],
    },
)
