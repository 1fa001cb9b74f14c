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
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="f2p maintainers",
    maintainer_email="maintainers@f2p-robotics.org",
    description='learning from a failure (paper 000 §4-6): classification by Real2Sim replay, SVGD state and action inference, the targeted dataset D+ in simulation, fine-tuning and the regression gate (f2p-learn), the §6 baselines, the model store, the learner node and offline learning from bags (f2p-learn-bag).',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "f2p-learn = f2p_learning.learn:main",
            "f2p-learn-bag = f2p_learning.bag_learning:main",
            "f2p-gate = f2p_learning.gate:main",
            "learner = f2p_learning.learner_node:main",
        ],
    },
)
