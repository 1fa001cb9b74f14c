"""Small hand-made scenes for the drawing and viewing tests."""
from __future__ import annotations

import numpy as np

from f2p_common.interfaces import SegmentedObject, SegmentedScene


def cuboid(oid: str, label: str, lo, hi) -> SegmentedObject:
    """An object whose points are the 8 corners of the axis-aligned box lo..hi."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], np.float32)
    return SegmentedObject(oid, label, corners)


def cup_in_bin(frame_id: str = "world", stamp_ns: int = 1_000) -> SegmentedScene:
    """A cup resting inside a bin on a table (the ids of support.failure_fixtures.handmade_event)."""
    return SegmentedScene([cuboid("table_0", "table", (0.3, -0.4, 0.0), (0.9, 0.4, 0.4)),
                           cuboid("bin_1", "bin", (0.5, -0.1, 0.4), (0.7, 0.1, 0.5)),
                           cuboid("cup_2", "cup", (0.57, -0.03, 0.41), (0.63, 0.03, 0.49))], frame_id, stamp_ns)
