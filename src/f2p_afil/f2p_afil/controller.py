"""The control loop a skill server runs with AFIL (or any step-wise controller).

A skill server implements :class:`ControlEnv` over its robot (the simulated robot's
``f2p_sim.control.SkillEnv``; a robot's Cartesian arm interface): ``observe`` the skill,
``step`` a few actions, ``done`` when the skill ended, ``stop`` to end it now. :func:`drive`
runs a controller on it chunk by chunk, reporting each chunk to a :class:`ControlMonitor`
(the action server's feedback) and polling it for a cancel between chunks.

A cancel or an unusable observation stops the skill cleanly: ``env.stop()`` is called, and
the skill server's outcome then opens the jaws and parks the gripper (``SkillEnv.outcome``):
whatever was held is let go where it is, never carried on blindly. A cancel that arrives
while a chunk runs takes effect when it ends (at most ``EXECUTE`` control steps, 80 ms): a
chunk is never cut in the middle of a grasp or release command.
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch

from .observation import EXECUTE, ObservationError, SkillObservation, features
from .policy import DAGPolicy, Guidance, sample_chunks


class ControlEnv(Protocol):
    def observe(self) -> SkillObservation: ...
    def step(self, actions: np.ndarray) -> None: ...
    @property
    def done(self) -> bool: ...
    def stop(self) -> None: ...


class ControlMonitor:
    """Watches a controlled skill: ``chunk`` after every executed chunk (index, observation
    before it, the actions); ``stop_requested`` polled before every chunk. Watches nothing by
    default."""

    def chunk(self, index: int, obs: SkillObservation, actions: np.ndarray) -> None:
        """A chunk was executed."""

    def stop_requested(self) -> bool:
        return False


class ControlStopped(Exception):
    """The skill was stopped before it ended (a cancel); the env was told to stop."""


def drive(env: ControlEnv, act: Callable[[SkillObservation], np.ndarray], monitor: ControlMonitor | None = None,
          max_chunks: int = 1000) -> int:
    """Run ``act`` (observation -> (n, 4) actions) on ``env`` until it is done; returns the
    chunks executed. ControlStopped on a cancel; ObservationError (after stopping the env) on
    an observation the controller must not act on."""
    monitor = monitor or ControlMonitor()
    k = 0
    while not env.done and k < max_chunks:
        if monitor.stop_requested():
            env.stop()
            raise ControlStopped(f"stopped on request after {k} chunks")
        obs = env.observe()
        try:
            actions = act(obs)
        except ObservationError:
            env.stop()
            raise
        env.step(actions)
        monitor.chunk(k, obs, actions)
        k += 1
    return k


class AfilController:
    """AFIL's policy as a controller: samples a chunk with ``guidance`` and hands its first
    ``execute`` actions to the env (receding horizon). ``seed`` fixes the sampling noise."""

    def __init__(self, policy: DAGPolicy, guidance: Guidance = Guidance(), seed: int = 0, execute: int = EXECUTE):
        self.policy = policy.eval()
        self.guidance = guidance
        self.execute = int(execute)
        self.generator = torch.Generator().manual_seed(int(seed))

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def __call__(self, obs: SkillObservation) -> np.ndarray:
        feats = torch.from_numpy(features(obs))[None]
        chunk = sample_chunks(self.policy, feats, self.guidance, self.generator)[0, :self.execute]
        return chunk.numpy().astype(np.float64)

    def run(self, env: ControlEnv, monitor: ControlMonitor | None = None) -> int:
        return drive(env, self, monitor)


__all__ = ["AfilController", "ControlEnv", "ControlMonitor", "ControlStopped", "ObservationError", "drive"]
