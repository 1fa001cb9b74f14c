"""f2p_common: what every f2p package shares, ROS-free.

``vocabulary`` (relations, object classes, skills and their parameter boxes, each task's skill
library), ``interfaces`` (the dataclasses nodes exchange, one per message), ``dataset`` (the
skill-effect dataset format) and ``resources`` (installed package data via the ament index).
"""
