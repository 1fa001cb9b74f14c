"""Load and check the simulated-world configuration (``world.yaml``, package data of f2p_sim).

The file holds per-class shape priors and physical parameters (paper 000 §5.3 "pre-defined
physical parameters for each object class"), physics settings, the workspace, the floating
gripper, camera presets, the noise model and the task-scene layouts. Lookup order for the
file: an explicit path, ``$F2P_SIM_CONFIG``, then the installed
``share/f2p_sim/config/world.yaml`` (ament index).

A layout other than the file's own (``layout:``) is one of its ``layouts:`` overlays merged
into the file: mappings merge key by key, anything else is replaced. The merged config names
its layout in ``layout`` and holds no ``layouts`` (so a dataset's manifest records exactly
the world it was made in).
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import yaml

from f2p_common.resources import share_path
from f2p_common.vocabulary import OBJECT_CLASSES

#: The task-scene layouts f2p_sim.tasks has a generator for.
LAYOUTS: tuple[str, ...] = ("paper", "real_scale")
_REQUIRED_SECTIONS = ("physics", "workspace", "gripper", "classes", "cameras", "noise", "observation")


def default_config_path() -> Path:
    """``$F2P_SIM_CONFIG`` if set, else the installed world.yaml of f2p_sim."""
    env = os.environ.get("F2P_SIM_CONFIG")
    if env:
        return Path(env)
    return share_path("f2p_sim", "config", "world.yaml")


def merge_overlay(base: dict, overlay: dict) -> dict:
    """``base`` with ``overlay`` merged in: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overlay(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, layout: str | None) -> dict:
    with open(path, "r", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    own = cfg.setdefault("layout", "paper")
    overlays = cfg.pop("layouts", None) or {}
    if layout not in (None, own):
        if layout not in overlays:
            raise ValueError(f"{path}: unknown layout {layout!r}; known: {', '.join((own, *overlays))}")
        cfg = merge_overlay(cfg, overlays[layout])
        cfg["layout"] = layout
    validate_config(cfg, f"{path} (layout {cfg['layout']})")
    return cfg


def load_world_config(path: str | os.PathLike | None = None, layout: str | None = None) -> dict:
    """The world config as a dict (a fresh deep copy: callers may modify it), in ``layout``
    (None: the file's own, ``paper`` in the shipped file)."""
    p = Path(path) if path is not None else default_config_path()
    return copy.deepcopy(_load_cached(str(p.resolve()), layout))


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
    if cfg.get("layout", "paper") not in LAYOUTS:
        raise ValueError(f"{source}: layout {cfg['layout']!r} has no scene generator ({', '.join(LAYOUTS)})")
    if cfg.get("layout") == "real_scale" and "furniture" not in cfg:
        raise ValueError(f"{source}: the real_scale layout needs a furniture section")
    if float(cfg["physics"]["timestep"]) <= 0:
        raise ValueError(f"{source}: physics.timestep must be positive")
    for name, cam in cfg["cameras"].items():
        for key in ("eye", "target", "fovy_deg", "width", "height"):
            if key not in cam:
                raise ValueError(f"{source}: cameras.{name}.{key} missing")
