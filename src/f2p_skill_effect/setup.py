from glob import glob

from setuptools import find_packages, setup

package_name = "f2p_skill_effect"

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
    description='the skill-effect model Gamma (paper 000 §3, A.11: point-cloud encoder, transformer latent dynamics, relation decoders), its one checkpoint format and the shooting/CEM planner; the shipped models as package data',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-sign = f2p_skill_effect.sign:main",
        ],
    },
)
