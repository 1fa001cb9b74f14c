"""f2p_perception: camera point clouds to segmented scenes (robot side).

Owns: segmentation backends (``segmentation``, ``geometric``, ``convexity``, ``image_segmenters``), the
self filter, the tracker,
the ``perception`` and ``cloud_filter`` nodes, the shipped segmentation model.
May import: ``f2p_common``; ROS (``f2p_ros``, ``f2p_interfaces``) only in the nodes.
"""
