"""The M (state, action) pairs every targeted method builds around one failure event (paper
000 §5.1-5.2, §6).

Every method hands over the same thing — M (state offsets, action) pairs — which
:mod:`f2p_learning.dplus` turns into transitions identically. Methods (:data:`METHODS`), all
with the same objective and the same M:

``fail2progress``  SVGD over states (eq. 5, :func:`~f2p_learning.states.infer_states`) then SVGD
                   over actions (eq. 7, :func:`~f2p_learning.actions.infer_actions`).
``gradient``       the same two steps without the kernel: independent gradient ascent.
``sampling``       rejection sampling on the same objectives (§6: "iteratively generates each
                   simulation state with the corresponding robot action until they satisfy the
                   objective"): :func:`~f2p_learning.states.rejection_states`, then per state
                   draws of the feasible action prior accepted with probability
                   exp(Σ H − |R'_F| log 2), exact rejection sampling of the eq. 6 posterior
                   (the entropy sum is at most |R'_F| log 2), up to ``ACTION_DRAWS`` (then the
                   most uncertain draw). (First built budget-matched to SVGD — 60·M candidates,
                   importance-resampled — most 5-object scenes it chose overlapped and Real2Sim
                   could not build them.)
``domain_randomization``  (A.16: "actions are held constant while object states and environments
                   are randomized") draws of the same feasible state prior (no objective), every
                   one with the failed action a_F.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from f2p_common.vocabulary import skill
from f2p_failure.events import FailureEvent
from f2p_skill_effect.model import SkillEffectModel

from .actions import ACTION_DRAWS, ActionPrior, action_log_prob, failure_literals, infer_actions, rejection_actions
from .states import FailureScene, infer_states, rejection_states

METHODS = ("fail2progress", "gradient", "sampling", "domain_randomization")


@dataclass
class Pairs:
    """M (state, action) pairs: offsets (M, S, 4) for Real2Sim, actions (M, d) in skill units."""

    method: str
    offsets: np.ndarray
    actions: np.ndarray
    state_particles: np.ndarray          # (M, 3n) the raw state particles
    seconds: float
    state_objective: np.ndarray          # log p(s_i) of eq. 4 at the chosen states
    action_objective: np.ndarray         # Σ H of eq. 6 at the chosen actions
    history: dict

    def at_bound(self) -> dict[str, int | None]:
        """Particles the priors' walls hold at the edge of the feasible set at the last step (SVGD
        and Gradient): states beyond the offset box, actions leaving the target off every support."""
        return {k: self.history[k][-1].get("at_bound") for k in ("states", "actions") if self.history.get(k)}


def infer_pairs(method: str, model: SkillEffectModel, event: FailureEvent, n_points: int, workspace,
                particles: int = 20, steps: int = 60, seed: int = 0, progress=None) -> Pairs:
    """The M (s_i, a_i) pairs of ``method`` for ``event`` (see the module docstring); ``steps``
    are the SVGD / gradient steps of fail2progress and gradient. SVGDDivergedError when the
    inference produces NaN/inf."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; targeted methods: {', '.join(METHODS)}")
    t0 = time.perf_counter()
    scene = FailureScene.from_event(event, n_points, workspace, seed=seed)
    gen = torch.Generator().manual_seed(seed + 17)
    history: dict = {}
    model.eval()
    spec = skill(event.skill)
    if method in ("fail2progress", "gradient"):
        kernel = method == "fail2progress"
        st = infer_states(model, scene, particles=particles, steps=steps, kernel=kernel, seed=seed, progress=progress)
        ac = infer_actions(model, scene, st.particles, event, steps=steps, kernel=kernel, seed=seed, progress=progress)
        states, units = st.particles, ac.particles
        s_obj, a_obj = st.log_prob, ac.log_prob
        history = {"states": st.history, "actions": ac.history}
    else:
        states, s_obj, history["state_rejection"] = rejection_states(model, scene, particles, gen,
                                                                     objective=method == "sampling")
        prior = ActionPrior(scene, states, event)
        obj = action_log_prob(model, scene, states, event, prior)
        if method == "sampling":
            h_max = len(failure_literals(event)) * float(np.log(2))
            units, a_obj, ok = rejection_actions(prior, obj, h_max, gen)
            history["action_rejection"] = {"draws_per_state": ACTION_DRAWS, "accepted": ok}
        else:
            units = torch.from_numpy(spec.to_unit(event.params).astype(np.float32))[None].repeat(particles, 1)
            with torch.no_grad():
                a_obj = obj(units)
    actions = np.stack([spec.from_unit(u) for u in units.detach().numpy()])
    return Pairs(method, scene.real2sim_offsets(states), actions, states.detach().numpy(),
                 time.perf_counter() - t0, s_obj.detach().numpy(), a_obj.detach().numpy(), history)
