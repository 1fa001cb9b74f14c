"""f2p skill-effect model Γ, checkpoint format and planner (paper 000 §3, A.11)."""
