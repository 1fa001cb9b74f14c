"""f2p_relations: paper 000 A.9 relations (robot side).

Owns: the one definition of the relations from object boxes (``relations``), relation detectors
(``detectors``) and the ``relation_detector`` node.
May import: ``f2p_common``, ``f2p_skill_effect``; ROS only in the node.
"""
from f2p_relations.relations import (  # noqa: F401
    Boxes, Relations, boxes_from_clouds, compute_relations, drawer_openings_from_boxes,
)
