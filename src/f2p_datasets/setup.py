from setuptools import find_packages, setup

package_name = "f2p_datasets"

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
    description="dataset generation in the simulated world for every learned system: skill-effect transitions "
                "(f2p-datagen), FailCoT (f2p-failcot), segmentation images (f2p-render-seg-data), AFIL's "
                "demonstrations, failure rollouts and corrections over its skill tasks.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-datagen = f2p_datasets.datagen:main",
            "f2p-render-seg-data = f2p_datasets.image_data:main",
            "f2p-failcot = f2p_datasets.failcot:main",
            "f2p-convert-frames = f2p_datasets.real_frames:main",
        ],
    },
)
