"""f2p_skill_effect: the skill-effect model Γ, its checkpoint format and planner (paper 000 §3, A.11; robot side).

Owns: ``model``, the one checkpoint format (``checkpoint``, signed with ``sign``), the
shooting/CEM ``planner``, the shipped models.
May import: ``f2p_common``, torch; no ROS.
"""
