"""AFIL (paper 003): a failure-aware skill controller — dual action generators on one backbone, adaptive failure-informed guidance. ROS-free."""
