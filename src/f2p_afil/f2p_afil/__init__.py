"""f2p_afil: AFIL, the failure-aware skill controller (paper 003; robot side).

Owns: observation/action conventions, the flow-matching policy with success and failure
generators on one backbone, static and adaptive guidance, its checkpoint, the shipped controller.
May import: ``f2p_common`` (its ``weights`` file format), torch; no ROS.
"""
