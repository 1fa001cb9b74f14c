"""f2p_learning: the learning service (off-board, layer 3).

Owns: classification, SVGD states and actions, D+, ``learn(LearnConfig)`` / ``f2p-learn``, the
jobs (one worker process per job) and model store, the ``learner`` node, ``f2p-learn-bag``, the
§6 baselines.
May import: the robot side, ``f2p_sim``, ``f2p_datasets``, ``f2p_training``; never the demos.
"""
