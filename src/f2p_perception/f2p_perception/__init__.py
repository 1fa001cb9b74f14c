"""f2p perception: from camera point clouds to segmented scenes (design.md: perception)."""
