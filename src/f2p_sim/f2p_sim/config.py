"""Load and check the simulated-world configuration (``world.yaml``, package data of f2p_sim).

The file holds per-class shape priors and physical parameters (paper 000 §5.3 "pre-defined
physical parameters for each object class"), physics settings, the workspace, the floating
gripper, camera presets and the noise model. Lookup order for the file: an explicit path,
``$F2P_SIM_CONFIG``, then the installed ``share/f2p_sim/config/world.yaml`` (ament index).
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import yaml

from f2p_common.resources import share_path
from f2p_common.vocabulary import OBJECT_CLASSES

_REQUIRED_SECTIONS = ("physics", "workspace", "gripper", "classes", "cameras", "noise", "observation")


def default_config_path() -> Path:
    """``$F2P_SIM_CONFIG`` if set, else the installed world.yaml of f2p_sim."""
    env = os.environ.get("F2P_SIM_CONFIG")
    if env:
        return Path(env)
    return share_path("f2p_sim", "config", "world.yaml")


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> dict:
    with open(path, "r", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    validate_config(cfg, path)
    return cfg


def load_world_config(path: str | os.PathLike | None = None) -> dict:
    """The world config as a dict (a fresh deep copy: callers may modify it)."""
    p = Path(path) if path is not None else default_config_path()
    return copy.deepcopy(_load_cached(str(p.resolve())))


def validate_config(cfg: dict, source: str = "<config>") -> None:
    """Raise ValueError naming the missing or bad entry."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: top level must be a mapping")
    for section in _REQUIRED_SECTIONS:
        if section not in cfg:
            raise ValueError(f"{source}: missing section {section!r}")
    for cls in OBJECT_CLASSES:
        if cls not in cfg["classes"]:
            raise ValueError(f"{source}: classes.{cls} missing (every known class needs a prior)")
        if "friction" not in cfg["classes"][cls]:
            raise ValueError(f"{source}: classes.{cls}.friction missing")
    for cls in cfg["classes"]:
        if cls not in OBJECT_CLASSES:
            raise ValueError(f"{source}: classes.{cls} is not a known class {OBJECT_CLASSES}")
    if float(cfg["physics"]["timestep"]) <= 0:
        raise ValueError(f"{source}: physics.timestep must be positive")
    for name, cam in cfg["cameras"].items():
        for key in ("eye", "target", "fovy_deg", "width", "height"):
            if key not in cam:
                raise ValueError(f"{source}: cameras.{name}.{key} missing")
