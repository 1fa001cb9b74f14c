"""AFIL's checkpoint: f2p's one weights file (``f2p_common.weights``) of format :data:`FORMAT`.

One ``torch.save`` file of tensors and strings only, ``{"format": FORMAT, "metadata": JSON,
"state_dict": ...}``, loaded with ``weights_only=True`` (no pickled code runs); the metadata
holds the :class:`PolicyConfig`, the observation / action conventions it was trained with,
``version``, ``parent_version``, ``training`` (how it was made) and ``metrics``, and a content
digest over metadata and weights; ``<file>.sha256`` beside it holds the file's SHA-256, and an
Ed25519 ``<file>.sig`` may sign it (``f2p-sign sign``, ``f2p_common.weights.sign_weights_file``). Loading
refuses a missing, truncated, modified or foreign file with :class:`CheckpointError`.

The shipped controller is package data (``share/f2p_afil/models/afil_controller.pt``,
:func:`shipped_controller`), made by ``make bench-afil`` (models/README.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from f2p_common.resources import share_path
from f2p_common.weights import CheckpointError, read_weights_file, write_weights_file

from .observation import ACTION_DIM, CHUNK, CONTROL_PERIOD, EXECUTE, MAX_STEP, POSITION_SCALE, SKILL_NAMES
from .policy import DAGPolicy, PolicyConfig

FORMAT = "f2p-afil-checkpoint/1"
SHIPPED_CONTROLLER = "afil_controller.pt"


def conventions_json() -> dict:
    """The observation and action conventions a policy's numbers mean something under."""
    return {"skills": list(SKILL_NAMES), "control_period": CONTROL_PERIOD, "max_step": MAX_STEP,
            "chunk": CHUNK, "execute": EXECUTE, "action_dim": ACTION_DIM, "position_scale": POSITION_SCALE}


@dataclass
class AfilCheckpoint:
    config: PolicyConfig
    state_dict: dict[str, torch.Tensor]
    version: str
    parent_version: str | None = None
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    conventions: dict = field(default_factory=conventions_json)


def save_controller(path: str | os.PathLike, policy: DAGPolicy, version: str, training: dict | None = None,
                    metrics: dict | None = None, parent_version: str | None = None) -> str:
    """Write ``policy`` durably and atomically with its sidecar; returns the file's SHA-256."""
    meta = {"policy_config": policy.config.to_json(), "conventions": conventions_json(), "version": version,
            "parent_version": parent_version, "training": training or {}, "metrics": metrics or {}}
    return write_weights_file(path, FORMAT, meta, policy.state_dict())


def load_controller(path: str | os.PathLike) -> tuple[DAGPolicy, AfilCheckpoint]:
    """Verify and load a controller checkpoint (CheckpointError saying what is wrong)."""
    meta, sd = read_weights_file(path, FORMAT)
    if meta.get("conventions") != conventions_json():
        raise CheckpointError(f"{path}: trained for other observation/action conventions {meta.get('conventions')}, "
                              f"this controller uses {conventions_json()}")
    try:
        config = PolicyConfig.from_json(meta["policy_config"])
        policy = DAGPolicy(config)
        policy.load_state_dict(sd, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the policy architecture ({e})") from e
    ckpt = AfilCheckpoint(config, sd, meta.get("version"), meta.get("parent_version"), meta.get("training", {}),
                          meta.get("metrics", {}), meta["conventions"])
    return policy.eval(), ckpt


def shipped_controller() -> Path:
    """The controller installed with ``f2p_afil`` (ResourceNotFoundError if not built)."""
    return share_path("f2p_afil", "models", SHIPPED_CONTROLLER)


def controller_path(value: str) -> Path:
    """What a node's ``afil_checkpoint`` parameter names: '' the shipped controller, else a path."""
    return shipped_controller() if not value else Path(value)
