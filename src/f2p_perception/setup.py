from setuptools import find_packages, setup

package_name = "f2p_perception"

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
    description='perception from camera point clouds to segmented scenes; first stage: the cloud_filter lifecycle node (validate, crop, voxelise).',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "cloud_filter = f2p_perception.cloud_filter_node:main",
            "perception = f2p_perception.perception_node:main",
        ],
    },
)
