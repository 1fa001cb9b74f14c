"""The package cut along the deployment boundary (design notes: robot side / off-board / simulation),
and off-board by pipeline stage.

* Layers, drawn from the imports: the robot side, then the simulated world and robot
  (``f2p_sim``), dataset generation (``f2p_datasets``) and training (``f2p_training``), the
  learning service (``f2p_learning``), the demos (``f2p_demo``) on top. A package imports only
  packages of lower layers (the robot side among itself); no module imports circle.
* In a fresh interpreter, the robot-side modules (planner, checkpoint, events, detection, the
  conversions) load neither MuJoCo, the simulator nor training or learning code.
* Every f2p import of a package is declared in its package.xml, and no robot-side package
  declares (or imports) the simulator, training or learning; the algorithm packages need no
  ROS at all, and everywhere only node modules (``*_node.py``) and the ROS side's own packages
  import ROS: algorithms stay callable as plain Python.
* Every third-party module a package's code imports is declared in its package.xml under its
  rosdep key, and every key declared resolves: a ROS package of Humble, Jazzy and Kilted,
  a key of rosdistro's rosdep database, or one of ``rosdep/f2p.yaml`` (whose pip packages
  ``requirements.lock`` pins) — so ``rosdep install --from-paths src`` installs what runs.
* Code finds installed files through the ament index, never by walking up from ``__file__``.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: Robot side: what runs on the robot's computer.
ROBOT = ("f2p_common", "f2p_ros", "f2p_relations", "f2p_perception", "f2p_skill_effect", "f2p_failure", "f2p_planner",
         "f2p_guardian", "f2p_afil", "f2p_executor", "f2p_viz", "f2p_skills", "f2p_bringup")
#: Off-board and simulation: never a dependency of a robot-side package.
OFF_BOARD = ("f2p_sim", "f2p_datasets", "f2p_training", "f2p_learning", "f2p_demo")
#: The layer of each package (module docstring): imports go to strictly lower layers only,
#: except among the robot side (layer 0).
LAYERS = {**{p: 0 for p in ROBOT}, "f2p_interfaces": 0, "f2p_sim": 1, "f2p_datasets": 2, "f2p_training": 2,
          "f2p_learning": 3, "f2p_demo": 4}
#: Packages that must not need ROS at all (algorithms without a node).
ROS_FREE = ("f2p_common", "f2p_skill_effect", "f2p_failure", "f2p_afil", "f2p_datasets", "f2p_training")
#: Packages whose every module is ROS-side (conversions, node helpers, parameters, the demos' graph client).
ROS_SIDE = ("f2p_ros", "f2p_bringup", "f2p_interfaces", "f2p_demo")
#: Modules outside node files that are ROS adapters by nature: they read ROS messages from bags.
ROS_ADAPTERS = ("f2p_learning/f2p_learning/bag_learning.py",)
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "builtin_interfaces", "f2p_interfaces",
               "diagnostic_msgs", "lifecycle_msgs", "rcl_interfaces", "visualization_msgs", "tf2_msgs", "tf2_ros",
               "control_msgs", "trajectory_msgs")
#: ROS packages f2p depends on, declared (and imported) by their own names; each is released
#: for Humble, Jazzy and Kilted (ros/rosdistro 8468e88's distribution.yaml files).
ROS_PACKAGES = {*ROS_MODULES, "action_msgs", "ament_cmake", "ament_index_python", "launch", "launch_ros",
                "message_filters", "rosgraph_msgs", "rosidl_default_generators", "rosidl_default_runtime", "rviz2",
                "std_srvs", "diagnostic_aggregator"} - {"f2p_interfaces"}
#: The rosdep key of each third-party Python module f2p's code imports.
ROSDEP_KEYS = {"numpy": "python3-numpy", "scipy": "python3-scipy", "torch": "python3-torch", "yaml": "python3-yaml",
               "PIL": "python3-pil", "cv2": "python3-opencv", "matplotlib": "python3-matplotlib",
               "tqdm": "python3-tqdm", "cryptography": "python3-cryptography", "open3d": "python3-open3d-pip",
               "mujoco": "python3-mujoco-pip", "rosbags": "python3-rosbags-pip",
               "transformers": "python3-transformers-pip", "ultralytics": "python3-ultralytics-pip",
               "peft": "python3-peft-pip", "tokenizers": "python3-tokenizers-pip",
               "segment_anything": "python3-segment-anything-pip", "ur_analytic_ik": "python3-ur-analytic-ik-pip",
               "lz4": "python3-lz4", "zstandard": "python3-zstandard", "rerun": "python3-rerun-sdk-pip"}
#: Keys of rosdistro's rosdep database (rosdep/base.yaml, python.yaml at ros/rosdistro 8468e88)
#: among :data:`ROSDEP_KEYS`; the others are defined in ``rosdep/f2p.yaml``.
ROSDISTRO_KEYS = {"python3-numpy", "python3-scipy", "python3-torch", "python3-yaml", "python3-pil", "python3-opencv",
                  "python3-matplotlib", "python3-tqdm", "python3-cryptography", "python3-open3d-pip",
                  "python3-mujoco-pip", "python3-rosbags-pip", "python3-transformers-pip", "python3-ultralytics-pip",
                  "python3-pytest"}
#: Imported only when installed, never a dependency: triton (torch's own; loaded before Mesa's
#: LLVM when present, f2p_sim.observation).
OPTIONAL_MODULES = {"triton"}


def packages() -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sorted(SRC.glob("*/package.xml"))}


def exec_depends(pkg_dir: Path) -> set[str]:
    root = ET.parse(pkg_dir / "package.xml").getroot()
    return {e.text for tag in ("exec_depend", "depend", "build_depend") for e in root.findall(tag)}


def imported_top_modules(pkg_dir: Path, files=None) -> dict[str, set[str]]:
    """Top-level module -> files of the package that import it (absolute imports only)."""
    out: dict[str, set[str]] = {}
    for f in files if files is not None else pkg_dir.rglob("*.py"):
        if "test" in f.relative_to(pkg_dir).parts:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(f.relative_to(SRC)))
    return out


def test_the_packages_are_the_documented_ones():
    assert set(packages()) == set(ROBOT) | set(OFF_BOARD) | {"f2p_interfaces"}


@pytest.mark.parametrize("name", sorted(set(packages()) - {"f2p_interfaces"}))
def test_every_f2p_import_is_declared_and_crosses_no_boundary(name):
    pkg = packages()[name]
    deps = exec_depends(pkg)
    imports = imported_top_modules(pkg)
    undeclared = {m: sorted(files) for m, files in imports.items()
                  if m.startswith("f2p_") and m != name and m not in deps}
    assert not undeclared, f"{name} imports packages its package.xml does not declare: {undeclared}"
    if name in ROBOT:
        crossing = sorted((deps | set(imports)) & set(OFF_BOARD))
        assert not crossing, f"robot-side {name} depends on off-board {crossing}"
        assert "mujoco" not in imports, f"robot-side {name} imports mujoco: {sorted(imports['mujoco'])}"
    if name in ROS_FREE:
        ros = sorted((deps | set(imports)) & set(ROS_MODULES))
        assert not ros, f"{name} must not need ROS, but uses {ros}"
    if name not in ROS_SIDE:
        algorithms = [f for f in (pkg / name).rglob("*.py") if not f.name.endswith("_node.py")
                      and str(f.relative_to(SRC)) not in ROS_ADAPTERS]
        ros = {m: sorted(fs) for m, fs in imported_top_modules(pkg, algorithms).items()
               if m in ROS_MODULES or m == "f2p_ros"}
        assert not ros, f"only *_node.py modules may import ROS; in {name}: {ros}"


@pytest.mark.parametrize("name", sorted(set(packages()) - {"f2p_interfaces"}))
def test_every_third_party_import_is_declared_by_its_rosdep_key(name):
    pkg = packages()[name]
    imports = imported_top_modules(pkg, list((pkg / name).rglob("*.py")))     # the code, not setup.py
    third_party = {m: sorted(f) for m, f in imports.items() if m not in sys.stdlib_module_names
                   and not m.startswith("f2p_") and m not in OPTIONAL_MODULES}
    unknown = {m: f for m, f in third_party.items() if m not in ROSDEP_KEYS and m not in ROS_PACKAGES}
    assert not unknown, f"{name} imports modules without a known rosdep key (add it to ROSDEP_KEYS): {unknown}"
    missing = {ROSDEP_KEYS.get(m, m): f for m, f in third_party.items() if ROSDEP_KEYS.get(m, m) not in exec_depends(pkg)}
    assert not missing, f"{name}'s package.xml does not declare what it imports: {missing}"


def test_every_declared_dependency_resolves_with_rosdep():
    f2p_keys = yaml.safe_load((ROOT / "rosdep" / "f2p.yaml").read_text())
    assert not set(f2p_keys) & ROSDISTRO_KEYS, "rosdep/f2p.yaml redefines rosdistro's keys"
    assert set(ROSDEP_KEYS.values()) <= ROSDISTRO_KEYS | set(f2p_keys)
    unresolved = {}
    for name, pkg in packages().items():
        root = ET.parse(pkg / "package.xml").getroot()
        keys = {e.text for e in root if e.tag.endswith("depend")}
        bad = sorted(k for k in keys if not (k in packages() or k in ROS_PACKAGES or k in ROSDISTRO_KEYS or k in f2p_keys))
        if bad:
            unresolved[name] = bad
    assert not unresolved, f"keys rosdep cannot resolve (define them in rosdep/f2p.yaml): {unresolved}"
    # the pip keys f2p defines install the packages requirements.lock pins
    pinned = {line.split("==")[0].strip().lower().replace("_", "-") for line in
              (ROOT / "requirements.lock").read_text().splitlines() if "==" in line and not line.startswith("#")}
    for key, rules in f2p_keys.items():
        for os_name, rule in rules.items():
            pip = rule.get("pip", {}).get("packages", []) if isinstance(rule, dict) else []
            assert all(p.lower().replace("_", "-") in pinned for p in pip), (key, os_name, pip)
            apt = rule if isinstance(rule, list) else []
            assert all(p.startswith("python3-") for p in apt), (key, os_name, apt)


@pytest.mark.parametrize("name", sorted(set(packages()) - {"f2p_interfaces"}))
def test_packages_import_only_lower_layers(name):
    deps = {m for m in imported_top_modules(packages()[name]) if m.startswith("f2p_") and m != name}
    upward = sorted(d for d in deps if LAYERS[d] > LAYERS[name] or (LAYERS[d] == LAYERS[name] and LAYERS[name] > 0))
    assert not upward, f"{name} (layer {LAYERS[name]}) imports {upward} of the same or a higher layer"


def _module_imports() -> dict[str, set[str]]:
    """f2p module -> the f2p modules it imports (absolute and relative, at any depth of the file)."""
    mods = {}
    for pkg_dir in packages().values():
        for f in (pkg_dir / pkg_dir.name).rglob("*.py"):
            parts = f.relative_to(pkg_dir).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    out = {}
    for mod, f in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:                   # relative: from the module's package upwards
                    parts = mod.split(".") + ([""] if f.name == "__init__.py" else [])
                    base = ".".join(parts[:-node.level] + ([base] if base else []))
                deps |= {base} | {f"{base}.{a.name}" for a in node.names}
        out[mod] = {d for d in deps if d in mods and d != mod}
    return out


def test_no_module_imports_circle():
    graph = _module_imports()
    state, cycles = {}, []

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_robot_side_modules_load_neither_the_simulator_nor_training_code():
    code = """
import json, sys
import f2p_skill_effect.planner, f2p_skill_effect.checkpoint, f2p_failure.events, f2p_failure.detection
import f2p_relations.relations, f2p_ros.conversions, f2p_ros.parameters, f2p_perception.cloud_filter_node
import f2p_perception.perception_node, f2p_relations.relation_detector_node, f2p_planner.planner_node
import f2p_executor.task_executor_node, f2p_viz.visualizer_node, f2p_afil.controller, f2p_afil.checkpoint
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mujoco", "f2p_sim", "f2p_datasets", "f2p_training",
                                                              "f2p_learning", "f2p_demo"))
print(json.dumps(loaded))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", sorted(packages()))
def test_every_package_says_what_it_owns_and_what_it_may_import(name):
    init = packages()[name] / name / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) if init.is_file() else None
    doc = doc or (packages()[name] / "README.md").read_text()
    assert "Owns:" in doc and "May import:" in doc, f"{name}: say what it owns and what it may import"


def test_no_code_walks_up_from_its_own_file():
    offenders = [str(f.relative_to(ROOT)) for f in SRC.rglob("*.py") if "__file__" in f.read_text(encoding="utf-8")]
    assert offenders == [], "find installed files with f2p_common.resources.share_path, not __file__"
    setups = [str(f.relative_to(ROOT)) for f in SRC.glob("*/setup.py") if ".." in f.read_text(encoding="utf-8")]
    assert setups == [], "package data must live inside its package"


def test_installed_data_is_found_through_the_ament_index():
    from f2p_bringup import params_file
    from f2p_sim.config import default_config_path
    from f2p_afil.checkpoint import shipped_controller
    from f2p_skill_effect.checkpoint import SHIPPED_MODELS, shipped_model
    env_override = os.environ.get("F2P_SIM_CONFIG")
    for path, package in ([(shipped_model(n), "f2p_skill_effect") for n in SHIPPED_MODELS]
                          + [(shipped_controller(), "f2p_afil")]
                          + [(params_file(), "f2p_bringup")]
                          + ([] if env_override else [(default_config_path(), "f2p_sim")])):
        assert path.is_file() and f"share/{package}/" in path.as_posix(), path


def test_colcon_resolves_the_robot_side_without_off_board_packages():
    """What docker/Dockerfile's robot image builds (F2P_PACKAGES for tools/setup.sh)."""
    import re
    docker = (ROOT / "docker" / "Dockerfile").read_text()
    robot = re.search(r'F2P_PACKAGES="([^"]+)"', docker).group(1).split()
    assert set(robot) <= set(ROBOT)
    r = subprocess.run(["colcon", "list", "--names-only", "--base-paths", str(SRC), "--packages-up-to", *robot],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    overlays = {p.parent.name for p in (SRC / "overlays").glob("*/package.xml")}     # upstream interfaces
    assert set(r.stdout.split()) - overlays == set(ROBOT) | {"f2p_interfaces"}
