"""The checkpoint of the skill-effect model Γ: f2p's one weights file (``f2p_common.weights``)
of format :data:`FORMAT`.

The file holds only tensors and strings and loads with ``torch.load(weights_only=True)``: no
pickled code ever runs. The JSON metadata holds ``model_config`` (ModelConfig), the relation
and skill vocabularies (names, order, parameter boxes), ``training_data`` (free-form description), ``metrics``,
``version`` and ``parent_version`` (the checkpoint this one was fine-tuned from, paper 000
§5), and ``content_sha256``: a digest over the metadata and every tensor's bytes.

Beside the file, ``<file>.sha256`` holds the SHA-256 of the file in ``sha256sum`` format.
Loading verifies the sidecar (file bytes), the content digest, that the archive is complete,
that the vocabularies equal f2p_common.vocabulary's and, when given, that the model config
equals the expected one. Any failure raises :class:`CheckpointError` saying which.

Signatures are the weights file's (Ed25519 over ``"<FORMAT>:sha256:<file SHA-256>"``):
:func:`sign_checkpoint` checks the file is a usable Γ checkpoint, then signs it
(``f2p_common.weights.sign_weights_file``); a robot verifies with
``f2p_common.weights.verify_signature(FORMAT, ...)``.

The shipped models are package data of ``f2p_skill_effect`` (``share/f2p_skill_effect/models/``,
found by :func:`shipped_model`); :func:`model_info` describes a checkpoint as the
``ModelInfo`` nodes exchange.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from f2p_common.interfaces import ModelInfo
from f2p_common.resources import share_path
from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS
from f2p_common.files import file_sha256
from f2p_common.weights import (CheckpointError, read_signature, read_weights_bytes, read_weights_file, sidecar_path,
                                sign_weights_file, write_weights_file)

from .model import ModelConfig, SkillEffectModel, build_model

FORMAT = "f2p-skill-effect-checkpoint/1"
#: The checkpoints installed with this package: the pre-trained model of the demo and of the
#: paper's recipe, the ``target_relations`` parent of the 5-minute recipe, and the child the demo
#: learns from its transport-3 failure, for trying a model swap without waiting for learning
#: (models/README.md).
SHIPPED_MODELS = ("skill_effect_pretrained.pt", "skill_effect_target_relations.pt", "skill_effect_transport3_learned.pt",
                  "skill_effect_real_scale.pt")


def vocabulary_json() -> dict:
    """The relation and skill vocabularies a model's output/input layout depends on."""
    return {
        "unary_relations": list(UNARY_RELATIONS),
        "binary_relations": list(BINARY_RELATIONS),
        "skills": [{"name": s.name, "targets": s.targets, "parameter_names": list(s.parameter_names),
                    "low": list(s.low), "high": list(s.high)} for s in SKILLS.values()],
    }


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    version: str
    parent_version: str | None = None
    training_data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    vocabulary: dict = field(default_factory=vocabulary_json)


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> str:
    """Write ``ckpt`` (:func:`write_weights_file`); return the file's SHA-256."""
    meta = {"model_config": ckpt.config.to_json(), "vocabulary": ckpt.vocabulary,
            "training_data": ckpt.training_data, "metrics": ckpt.metrics,
            "version": ckpt.version, "parent_version": ckpt.parent_version}
    return write_weights_file(path, FORMAT, meta, ckpt.state_dict)


def load_checkpoint(path: str | os.PathLike, expected_config: ModelConfig | None = None,
                    require_sidecar: bool = True) -> Checkpoint:
    """Read and verify a checkpoint; :class:`CheckpointError` on any problem."""
    meta, sd = read_weights_file(path, FORMAT, require_sidecar)
    return _checkpoint(meta, sd, str(path), expected_config)


def load_checkpoint_bytes(data: bytes, sha256: str, name: str = "checkpoint",
                          expected_config: ModelConfig | None = None) -> Checkpoint:
    """:func:`load_checkpoint` on a file's bytes already in memory, which must have ``sha256``:
    what a caller verified (hash, signature) is what it loads."""
    meta, sd = read_weights_bytes(data, FORMAT, name, sha256)
    return _checkpoint(meta, sd, name, expected_config)


def _checkpoint(meta: dict, sd: dict, name: str, expected_config: ModelConfig | None) -> Checkpoint:
    if meta.get("vocabulary") != vocabulary_json():
        raise CheckpointError(f"{name}: relation/skill vocabulary differs from f2p_common.vocabulary; "
                              f"checkpoint has {meta.get('vocabulary')}")
    try:
        cfg = ModelConfig.from_json(meta["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: bad model_config ({e})") from e
    if expected_config is not None and cfg != expected_config:
        diff = {k: (v, getattr(expected_config, k)) for k, v in cfg.__dict__.items() if getattr(expected_config, k) != v}
        raise CheckpointError(f"{name}: architecture config differs from the expected one: {diff} (checkpoint, expected)")
    if not isinstance(meta.get("version"), str) or not meta["version"]:
        raise CheckpointError(f"{name}: the checkpoint names no version")
    return Checkpoint(cfg, sd, meta["version"], meta.get("parent_version"),
                      meta.get("training_data", {}), meta.get("metrics", {}), meta["vocabulary"])


def model_from_checkpoint(ckpt: Checkpoint) -> SkillEffectModel:
    """The model a loaded checkpoint describes, with its weights (strict), in eval mode."""
    try:
        model = build_model(ckpt.config)
    except ValueError as e:        # an architecture this code does not know
        raise CheckpointError(f"checkpoint {ckpt.version}: {e}") from None
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {ckpt.version}: weights do not fit the architecture: {e}") from e
    return model.eval()


def load_model(path: str | os.PathLike, expected_config: ModelConfig | None = None,
               require_sidecar: bool = True) -> tuple[SkillEffectModel, Checkpoint]:
    """Read and verify a checkpoint, and build its model (:func:`model_from_checkpoint`)."""
    ckpt = load_checkpoint(path, expected_config, require_sidecar)
    try:
        return model_from_checkpoint(ckpt), ckpt
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e


def shipped_model(name: str = SHIPPED_MODELS[0]) -> Path:
    """Path of a checkpoint installed with ``f2p_skill_effect`` (ResourceNotFoundError if the
    workspace is not built and sourced)."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"no shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return share_path("f2p_skill_effect", "models", name)


def checkpoint_path(value: str) -> Path:
    """What a node's ``checkpoint`` parameter names: '' the shipped pre-trained model, the file
    name of another shipped model (e.g. ``skill_effect_real_scale.pt``), else a path."""
    if not value:
        return shipped_model(SHIPPED_MODELS[0])
    if value in SHIPPED_MODELS:
        return shipped_model(value)
    return Path(value)


def sign_checkpoint(path: str | os.PathLike, private_key: str | os.PathLike) -> str:
    """Sign the Γ checkpoint at ``path`` (verified to load first) with the Ed25519 ``private_key``
    (PEM); writes ``<path>.sig`` and returns the signature (hex)."""
    load_checkpoint(path)
    return sign_weights_file(path, private_key, FORMAT)


def model_info(path: str | os.PathLike, ckpt: Checkpoint | None = None, name: str = "skill_effect") -> ModelInfo:
    """The ModelInfo of the checkpoint at ``path`` (read and verified unless ``ckpt`` is given):
    version, parent, the file's SHA-256 (its sidecar), its signature (``<file>.sig``, if signed),
    its URI, when it was written and its scalar metrics."""
    path = Path(path)
    ckpt = ckpt or load_checkpoint(path)
    side = sidecar_path(path)
    digest = side.read_text().split()[0] if side.is_file() else file_sha256(path)
    metrics = {k: float(v) for k, v in ckpt.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return ModelInfo(name=name, version=ckpt.version, parent_version=ckpt.parent_version or "", sha256=digest,
                     signature=read_signature(path), uri=path.absolute().as_uri(), created_ns=path.stat().st_mtime_ns,
                     metrics=metrics)
