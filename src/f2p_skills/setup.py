from setuptools import find_packages, setup

package_name = "f2p_skills"

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
    description="the skill server: ExecuteSkill on a real arm through its vendor's controller",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "skill_server = f2p_skills.skill_server_node:main",
        ],
    },
)
