"""f2p_common: what every f2p package shares, ROS-free (robot side, layer 0).

Owns: ``vocabulary`` (relations, object classes, skills and their parameter boxes, each task's
skill library), ``interfaces`` (the dataclasses nodes exchange, one per message), ``parameters``
(node parameter tables and their validation), ``dataset`` (the skill-effect dataset format),
``files`` (atomic writes), ``resources`` (installed package data via the ament index),
``weights`` (the one weights-file format of every learned model and its Ed25519 signatures) and
``backends`` (the one way a node's ``backend`` parameter picks an implementation).
May import: numpy and the standard library; ``weights`` imports torch and cryptography inside
the functions that need them. No f2p package, no ROS.
"""
