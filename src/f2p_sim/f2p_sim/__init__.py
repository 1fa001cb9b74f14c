"""f2p_sim: the simulated world of f2p (paper 000 §3, §5.3, A.9-A.12) on MuJoCo.

Owns: config (world.yaml), scene (SceneSpec -> MJCF), backend (SimBackend boundary),
mujoco_backend (the embedded default), skills (A.10), observation (ray-cast partial-view
segmented clouds, noise), tasks (the three paper tasks), reference (their scripted
ground-truth solutions: are they solvable?), real2sim (§5.3/A.12), episode (one task attempt:
observe, plan with Γ, execute, detect failures), control and demonstrator (step-wise physical
skills), robot and sim_robot_node (the world as a robot's camera driver and skill server).
May import: the robot side only (layer 1); data generated in this world lives in ``f2p_datasets``.
"""
