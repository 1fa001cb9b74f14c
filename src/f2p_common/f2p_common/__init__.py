"""f2p_common: what every f2p package shares, ROS-free (robot side, layer 0).

Owns: ``vocabulary`` (relations, object classes, skills and their parameter boxes, each task's
skill library), ``interfaces`` (the dataclasses nodes exchange, one per message), ``parameters``
(node parameter tables and their validation), ``dataset`` (the skill-effect dataset format),
``files`` (atomic writes) and ``resources`` (installed package data via the ament index).
May import: numpy and the standard library only; no f2p package, no ROS.
"""
