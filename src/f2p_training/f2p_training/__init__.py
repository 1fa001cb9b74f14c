"""f2p_training: training and evaluation of the learned models (off-board, layer 2).

Owns: pre-training and fine-tuning of Γ (``train``, the one ``FineTuneRecipe``), evaluation
(``evaluate``), Guardian's, YOLO-seg's and AFIL's training.
May import: the robot side; neither the simulator nor ROS.
"""
