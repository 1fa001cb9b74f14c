"""Which ROS 2 distro this process runs, and commands run in an f2p workspace of another.

f2p is built and tested on two distros' PyPI wheels, Kilted (the default) and Jazzy (LTS):
``F2P_ROS_DISTRO=jazzy make setup`` builds the Jazzy workspace beside Kilted's (``.venv-jazzy``,
``install-jazzy/``), and ``. ./env.sh`` enters the one ``F2P_ROS_DISTRO`` names, setting
``ROS_DISTRO`` as a ROS install's ``setup.bash`` does. A third workspace is the robot's CPU-only
one (Kilted, ``F2P_TORCH=cpu``: the robot-side packages on the PyTorch CPU build, what the robot
image runs).

A robot on one distro and a learner on another talk over DDS as any two ROS 2 processes do (the
same interfaces have the same RIHS01 type hashes on both). What they cannot share is a process
environment: the two distros' wheels install under the same module names, and a Python started
with the other workspace's variables is stopped by the wheels' own environment guard
(``ros_wheels_bootstrapper``). :func:`command_in_distro` therefore starts a command from a clean
environment — only the variables that say where ROS traffic goes, where files live and how many
threads to use are kept — and enters the other workspace's ``env.sh`` before it.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The distros f2p has a lock file for; the first is the default.
DISTROS = ("kilted", "jazzy")
#: Each workspace's folder suffix (``.venv<suffix>``, ``install<suffix>``), by (distro, torch).
WORKSPACES = {("kilted", "cuda"): "", ("jazzy", "cuda"): "-jazzy", ("kilted", "cpu"): "-robot-cpu"}
#: Variables a command in another distro keeps from this process: the ROS network (domain,
#: discovery range, middleware), the user's files and locale, thread counts and the renderer.
KEPT = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TMPDIR", "ROS_DOMAIN_ID",
        "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "RMW_IMPLEMENTATION",
        "ROS_HOME", "ROS_LOG_DIR", "F2P_ROS_NETWORK", "F2P_CACHE_DIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "MUJOCO_GL", "PYOPENGL_PLATFORM")


class DistroError(RuntimeError):
    """The distro is unknown, or its workspace is not built here."""


def current_distro() -> str:
    """The distro of this process: ``ROS_DISTRO`` (``env.sh`` or a ROS install sets it), else the
    default."""
    return os.environ.get("ROS_DISTRO") or DISTROS[0]


def workspace(distro: str, root: str | Path | None = None, torch: str = "cuda") -> tuple[Path, Path]:
    """The virtualenv and colcon install folder of ``distro``'s f2p workspace (with ``torch``'s
    build: cuda or cpu) under ``root`` (default: ``$F2P_ROOT``, which ``env.sh`` sets);
    :class:`DistroError` when there is no such workspace or it is not built."""
    if distro not in DISTROS:
        raise DistroError(f"unknown ROS distro {distro!r}; f2p is built for {', '.join(DISTROS)}")
    if (distro, torch) not in WORKSPACES:
        raise DistroError(f"no {distro} workspace with torch {torch!r}: the CPU-only one is Kilted's")
    if root is None:
        if "F2P_ROOT" not in os.environ:
            raise DistroError("F2P_ROOT is not set: enter an f2p workspace first (. ./env.sh)")
        root = os.environ["F2P_ROOT"]
    suffix = WORKSPACES[distro, torch]
    venv, install = Path(root) / f".venv{suffix}", Path(root) / f"install{suffix}"
    if not (venv / "bin" / "python").exists() or not (install / "setup.sh").is_file():
        knobs = f"F2P_ROS_DISTRO={distro}" + (f" F2P_TORCH={torch}" if torch != "cuda" else "")
        raise DistroError(f"the {distro} workspace{' (torch ' + torch + ')' if torch != 'cuda' else ''} is not built "
                          f"in {root}: run '{knobs} make setup' there")
    return venv, install


def command_in_distro(distro: str, argv: list[str], environment: dict[str, str] | None = None,
                      root: str | Path | None = None, torch: str = "cuda") -> tuple[list[str], dict[str, str]]:
    """``(command, environment)`` for ``subprocess.Popen`` that runs ``argv`` in ``distro``'s f2p
    workspace (``torch``'s build): a clean environment (:data:`KEPT` from this one, plus
    ``environment``), then ``F2P_ROS_DISTRO=<distro> F2P_TORCH=<torch> . <root>/env.sh``, then
    ``exec argv``."""
    workspace(distro, root, torch)
    root = Path(root if root is not None else os.environ["F2P_ROOT"]).resolve()
    env = {k: os.environ[k] for k in KEPT if k in os.environ}
    env.update(environment or {})
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", F2P_ROS_DISTRO=distro, F2P_TORCH=torch)
    script = '. "$F2P_ENV_SH" && exec "$@"'
    env["F2P_ENV_SH"] = str(root / "env.sh")
    return ["/bin/bash", "-c", script, f"f2p-{distro}", *argv], env
