from setuptools import find_packages, setup

package_name = "f2p_training"

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
    description='training and evaluation of the skill-effect model on datasets (f2p-train, f2p-evaluate)',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-train = f2p_training.train:main",
            "f2p-evaluate = f2p_training.evaluate:main",
            "f2p-train-yolo-seg = f2p_training.yolo_seg:main",
            "f2p-train-guardian = f2p_training.guardian:main",
        ],
    },
)
