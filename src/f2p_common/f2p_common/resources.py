"""Installed package data, found the ROS way: ``share/<package>/...`` through the ament index.

Shipped models (``f2p_skill_effect``), the simulated world (``f2p_sim``) and node parameters
(``f2p_bringup``) are installed as package data by colcon, with or without
``--symlink-install``, and in any release; code asks the ament index for them and never walks
up from its own file. The index is read from ``AMENT_PREFIX_PATH``, which sourcing a
workspace's ``install/setup.sh`` (or ``. ./env.sh``) sets.
"""
from __future__ import annotations

import os
from pathlib import Path


class ResourceNotFoundError(FileNotFoundError):
    """A package or one of its installed files is not in the ament index."""


def share_path(package: str, *parts: str) -> Path:
    """``<prefix>/share/<package>/<parts...>`` of the installed ``package``; the file or folder
    must exist. ResourceNotFoundError says which package or file is missing and what to do."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        share = Path(get_package_share_directory(package))
    except (PackageNotFoundError, LookupError, ValueError, OSError) as e:  # OSError: no AMENT_PREFIX_PATH
        raise ResourceNotFoundError(
            f"package {package!r} is not installed in the ament index ({e}); build the workspace and "
            "source it (make setup && . ./env.sh), or pass an explicit path") from None
    path = share.joinpath(*parts)
    if not path.exists():
        raise ResourceNotFoundError(f"{path} does not exist: {package!r} was installed without {'/'.join(parts)!r} "
                                    "(rebuild the workspace: make setup)")
    return path


def f2p_home() -> Path:
    """``$ROS_HOME/f2p`` (ROS_HOME defaults to ``~/.ros``): where f2p's nodes keep what they write
    by default (the spool, the learner's queue and model store, bags)."""
    return Path(os.environ.get("ROS_HOME", Path.home() / ".ros")) / "f2p"
