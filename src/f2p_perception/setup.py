from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_perception"

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
    description='perception from camera clouds or RGB-D images to segmented scenes: segmentation backends (labelled_cloud, geometric, yolo_seg, sam; ROS-free) behind the perception node, the shipped YOLO segmentation model, and the cloud_filter node',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "cloud_filter = f2p_perception.cloud_filter_node:main",
            "perception = f2p_perception.perception_node:main",
        ],
    },
)
