"""f2p_training: pre-training, fine-tuning (``train``) and evaluation (``evaluate``) of the
skill-effect model on datasets (``transitions``). Off-board; imports neither the simulator nor ROS."""
