"""f2p_perception: camera point clouds to segmented scenes (robot side).

Owns: segmentation backends (``segmentation``, ``geometric``, ``image_segmenters``), the tracker,
the ``perception`` and ``cloud_filter`` nodes, the shipped segmentation model.
May import: ``f2p_common``; ROS (``f2p_ros``, ``f2p_interfaces``) only in the nodes.
"""
