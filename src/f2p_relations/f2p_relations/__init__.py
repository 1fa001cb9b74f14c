"""f2p relations: the one definition of paper 000 A.9 relations (relations.py), relation detectors
(detectors.py) and the relation_detector node (relation_detector_node.py)."""
from f2p_relations.relations import (  # noqa: F401
    Boxes, Relations, boxes_from_clouds, compute_relations, drawer_openings_from_boxes,
)
