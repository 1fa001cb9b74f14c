"""f2p_common: the one relation/skill vocabulary and the one set of message conversions.

`vocabulary` is pure Python (no ROS import) so off-board code can use it; `pointcloud`
and the other conversion modules import ROS message types only.
"""
