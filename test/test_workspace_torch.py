"""Which torch build the workspace runs: the robot's CPU-only workspace (F2P_TORCH=cpu, what the
robot image installs) has the PyTorch CPU build, no CUDA libraries and none of the learner's
simulator or training code; the default workspaces have PyPI's CUDA build."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import torch


def test_the_workspace_has_the_torch_build_it_was_set_up_with():
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    cuda_libraries = sorted(n for n in installed if n.startswith("nvidia-") or n == "triton")
    if os.environ.get("F2P_TORCH", "cuda") == "cpu":
        assert torch.version.cuda is None and torch.__version__.endswith("+cpu"), torch.__version__
        assert cuda_libraries == []
        offboard = [m for m in ("mujoco", "torchvision", "ultralytics", "f2p_sim", "f2p_training", "f2p_learning")
                    if importlib.util.find_spec(m)]
        assert offboard == [], f"the robot's workspace has the learner's {offboard}"
    else:
        assert torch.version.cuda and "nvidia-cublas" in cuda_libraries


def test_every_module_of_every_built_package_imports():
    """What this workspace built (the robot's: the robot side only) imports with what its lock
    installed: a dependency that only arrived transitively through an offboard package shows here."""
    import importlib
    import pkgutil

    from ament_index_python.packages import get_packages_with_prefixes
    built = sorted(p for p in get_packages_with_prefixes() if p.startswith("f2p_") and p != "f2p_interfaces")
    assert "f2p_planner" in built
    failed = {}
    for package in built:
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            try:
                importlib.import_module(info.name)
            except Exception as exc:                          # any failure to import is the finding
                failed[info.name] = repr(exc)
    assert failed == {}
