"""Rewrite the build-image interpreter paths baked into the ROS 2 PyPI wheels' CMake files.

The ros-kilted-* wheels are built in a manylinux image whose CMake export files
(<venv>/share/*/cmake/*.cmake) name /opt/python/cp311-cp311/include/python3.11 and that
image's numpy include dir; CMake refuses paths that do not exist, so `colcon build` of any
interface package fails. We point them at this interpreter's include dir and this numpy.
Idempotent: a second run finds nothing to rewrite.
"""
from __future__ import annotations

import pathlib
import sys
import sysconfig

import numpy

BAD_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BAD_NUMPY = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(prefix: str) -> int:
    good_include = sysconfig.get_paths()["include"]
    good_numpy = numpy.get_include()
    changed = 0
    for path in pathlib.Path(prefix).glob("**/share/*/cmake/*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if BAD_INCLUDE not in text and BAD_NUMPY not in text:
            continue
        # numpy first: BAD_INCLUDE is not a prefix of it, but keep the order explicit.
        text = text.replace(BAD_NUMPY, good_numpy).replace(BAD_INCLUDE, good_include)
        path.write_text(text, errors="surrogateescape")
        changed += 1
    print(f"  rewrote {changed} CMake file(s) -> {good_include}, {good_numpy}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
