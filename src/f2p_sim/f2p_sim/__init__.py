"""f2p_sim: the simulated world of f2p (paper 000 §3, §5.3, A.9-A.12) on MuJoCo.

Modules: config (world.yaml), scene (SceneSpec -> MJCF), backend (SimBackend boundary),
mujoco_backend (the embedded default), skills (A.10), observation (ray-cast partial-view
segmented clouds, noise), tasks (the three paper tasks), reference (their scripted
ground-truth solutions: are they solvable?), real2sim (§5.3/A.12), episode (one task attempt:
observe, plan with Γ, execute, detect failures), datagen (``generate``, CLI f2p-datagen).
"""
