"""f2p_skill_effect: the skill-effect model Γ, its checkpoint format and planner (paper 000 §3, A.11; robot side).

Owns: ``model``, Γ's ``checkpoint`` (the weights file of ``f2p_common.weights`` with Γ's config
and vocabulary), ``f2p-sign`` (``sign``: keys, and signing any f2p weights file), the
shooting/CEM ``planner``, the shipped models.
May import: ``f2p_common``, torch; no ROS.
"""
