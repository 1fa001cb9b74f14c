"""f2p_guardian: Guardian, plan and execution verification with reasoning (paper 002; robot side).

Owns: the failure taxonomy and answer format, the symbolic, vision-language and baseline
verifiers, and the ``guardian`` node.
May import: ``f2p_common``, ``f2p_relations``, torch / transformers; ROS only in the node.
"""
