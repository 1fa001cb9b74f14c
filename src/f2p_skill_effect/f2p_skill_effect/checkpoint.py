"""The one checkpoint format of the skill-effect model Γ (design notes: "one checkpoint format").

A checkpoint is one file written by ``torch.save`` holding only tensors and strings::

    {"format": FORMAT, "metadata": "<JSON text>", "state_dict": {name: tensor, ...}}

so it loads with ``torch.load(weights_only=True)``: no pickled code ever runs. The JSON
metadata holds ``model_config`` (ModelConfig), the relation and skill vocabularies
(names, order, parameter boxes), ``training_data`` (free-form description), ``metrics``,
``version`` and ``parent_version`` (the checkpoint this one was fine-tuned from, paper 000
§5), and ``content_sha256``: a digest over the metadata and every tensor's bytes.

Beside the file, ``<file>.sha256`` holds the SHA-256 of the file in ``sha256sum`` format.
Loading verifies the sidecar (file bytes), the content digest, that the archive is complete,
that the vocabularies equal f2p_common.vocabulary's and, when given, that the model config
equals the expected one. Any failure raises :class:`CheckpointError` saying which.

Signatures (Ed25519, ``cryptography``): :func:`sign_checkpoint` signs the file's SHA-256 with a
private key and writes it hex-encoded to ``<file>.sig``; :func:`verify_signature` checks a
digest and signature against a public key (PEM), so a robot can refuse a checkpoint that its
learner did not sign. :func:`generate_signing_key` writes a key pair.

The shipped models are package data of ``f2p_skill_effect`` (``share/f2p_skill_effect/models/``,
found by :func:`shipped_model`); :func:`model_info` describes a checkpoint as the
``ModelInfo`` nodes exchange.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from f2p_common.files import write_atomic
from f2p_common.interfaces import ModelInfo
from f2p_common.resources import share_path
from f2p_common.vocabulary import BINARY_RELATIONS, SKILLS, UNARY_RELATIONS

from .model import ModelConfig, SkillEffectModel, build_model

FORMAT = "f2p-skill-effect-checkpoint/1"
#: The checkpoints installed with this package: the pre-trained model of the demo and of the
#: paper's recipe, the ``target_relations`` parent of the 5-minute recipe, and the child the demo
#: learns from its transport-3 failure, for trying a model swap without waiting for learning
#: (models/README.md).
SHIPPED_MODELS = ("skill_effect_pretrained.pt", "skill_effect_target_relations.pt", "skill_effect_transport3_learned.pt",
                  "skill_effect_real_scale.pt")


class CheckpointError(Exception):
    """A checkpoint that cannot be trusted or used: missing, truncated, tampered with, or
    made for another architecture or vocabulary."""


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


def content_digest(metadata_wo_digest: dict, state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(metadata_wo_digest, sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode() + b"\0" + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".sha256")


def write_weights_file(path: str | os.PathLike, fmt: str, meta: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """The one way f2p writes weights: ``{"format", "metadata" (JSON with a content digest),
    "state_dict"}`` durably and atomically (``f2p_common.files.write_atomic``), then the
    ``.sha256`` sidecar; returns the file's SHA-256. (A crash in between leaves a file whose
    sidecar does not match: it loads as corrupt, never as another model.)"""
    path = Path(path)
    sd = {k: v.detach().cpu().clone() for k, v in state_dict.items()}
    meta = {"format": fmt, **meta}
    meta["content_sha256"] = content_digest(meta, sd)
    buf = io.BytesIO()
    torch.save({"format": fmt, "metadata": json.dumps(meta, sort_keys=True), "state_dict": sd}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    write_atomic(path, data)
    write_atomic(sidecar_path(path), f"{digest}  {path.name}\n")
    return digest


def read_weights_file(path: str | os.PathLike, fmt: str, require_sidecar: bool = True) -> tuple[dict, dict]:
    """(metadata without its digest, state_dict) of a :func:`write_weights_file` file, verified:
    the sidecar's SHA-256, a weights-only load (no pickled code runs), the format, the content
    digest. :class:`CheckpointError` says which check failed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    data = path.read_bytes()
    side = sidecar_path(path)
    if side.is_file():
        want = side.read_text().split()[0] if side.read_text().split() else ""
        got = hashlib.sha256(data).hexdigest()
        if want != got:
            raise CheckpointError(f"{path}: SHA-256 {got} does not match {side.name} ({want}): "
                                  "file truncated or modified after it was written")
    elif require_sidecar:
        raise CheckpointError(f"{path}: missing {side.name}; cannot verify the file's integrity")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle content, ... all mean "unusable"
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise CheckpointError(f"{path}: format {obj.get('format') if isinstance(obj, dict) else type(obj)!r}, expected {fmt!r}")
    try:
        meta = json.loads(obj["metadata"])
        sd = obj["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: malformed checkpoint ({e})") from e
    digest = meta.pop("content_sha256", None)
    if digest != content_digest(meta, sd):
        raise CheckpointError(f"{path}: content digest mismatch: metadata or weights were modified")
    return meta, sd


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> str:
    """Write ``ckpt`` (:func:`write_weights_file`); return the file's SHA-256."""
    meta = {"model_config": ckpt.config.to_json(), "vocabulary": ckpt.vocabulary,
            "training_data": ckpt.training_data, "metrics": ckpt.metrics,
            "version": ckpt.version, "parent_version": ckpt.parent_version}
    return write_weights_file(path, FORMAT, meta, ckpt.state_dict)


def load_checkpoint(path: str | os.PathLike, expected_config: ModelConfig | None = None,
                    require_sidecar: bool = True) -> Checkpoint:
    """Read and verify a checkpoint; :class:`CheckpointError` on any problem."""
    path = Path(path)
    meta, sd = read_weights_file(path, FORMAT, require_sidecar)
    if meta.get("vocabulary") != vocabulary_json():
        raise CheckpointError(f"{path}: relation/skill vocabulary differs from f2p_common.vocabulary; "
                              f"checkpoint has {meta.get('vocabulary')}")
    try:
        cfg = ModelConfig.from_json(meta["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model_config ({e})") from e
    if expected_config is not None and cfg != expected_config:
        diff = {k: (v, getattr(expected_config, k)) for k, v in cfg.__dict__.items() if getattr(expected_config, k) != v}
        raise CheckpointError(f"{path}: architecture config differs from the expected one: {diff} (checkpoint, expected)")
    return Checkpoint(cfg, sd, meta.get("version"), meta.get("parent_version"),
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


# ---------------------------------------------------------------------------- signatures
#: What is signed: this prefix and the file's SHA-256 (hex), so a signature made for anything
#: else (another format, another file) never verifies a checkpoint.
SIGNED_PREFIX = FORMAT + ":sha256:"


def signature_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".sig")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generate_signing_key(private_key: str | os.PathLike) -> Path:
    """Write a new Ed25519 key pair: ``private_key`` (PEM, mode 0600) and ``<private_key>.pub``
    (PEM, to install on robots); returns the public key's path. An existing file is never
    overwritten (FileExistsError)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    private_key = Path(private_key)
    public_key = Path(str(private_key) + ".pub")
    for p in (private_key, public_key):
        if p.exists():
            raise FileExistsError(f"{p} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(private_key, pem)
    os.chmod(private_key, 0o600)
    write_atomic(public_key, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_key


def sign_checkpoint(path: str | os.PathLike, private_key: str | os.PathLike) -> str:
    """Sign the checkpoint at ``path`` (verified first) with the Ed25519 ``private_key`` (PEM);
    writes ``<path>.sig`` and returns the signature (hex)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    load_checkpoint(path)
    try:
        key = serialization.load_pem_private_key(Path(private_key).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot read the signing key {private_key}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{private_key} is not an Ed25519 private key")
    signature = key.sign((SIGNED_PREFIX + file_sha256(path)).encode()).hex()
    write_atomic(signature_path(path), signature + "\n")
    return signature


def verify_signature(sha256: str, signature: str, public_key: str | os.PathLike) -> None:
    """CheckpointError unless ``signature`` (hex) is the Ed25519 signature, by the key whose public
    half is ``public_key`` (PEM file), of a checkpoint file with this ``sha256``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    if not signature:
        raise CheckpointError("the checkpoint is not signed, and signatures are required")
    try:
        key = serialization.load_pem_public_key(Path(public_key).read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot read the public key {public_key}: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{public_key} is not an Ed25519 public key")
    try:
        key.verify(bytes.fromhex(signature), (SIGNED_PREFIX + sha256).encode())
    except (InvalidSignature, ValueError):
        raise CheckpointError(f"bad signature for checkpoint sha256 {sha256[:16]}...: not signed by the key "
                              f"{public_key}, or the file changed after signing") from None


def model_info(path: str | os.PathLike, ckpt: Checkpoint | None = None, name: str = "skill_effect") -> ModelInfo:
    """The ModelInfo of the checkpoint at ``path`` (read and verified unless ``ckpt`` is given):
    version, parent, the file's SHA-256 (its sidecar), its signature (``<file>.sig``, if signed),
    its URI, when it was written and its scalar metrics."""
    path = Path(path)
    ckpt = ckpt or load_checkpoint(path)
    side = sidecar_path(path)
    digest = side.read_text().split()[0] if side.is_file() else hashlib.sha256(path.read_bytes()).hexdigest()
    metrics = {k: float(v) for k, v in ckpt.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    sig = signature_path(path)
    signature = sig.read_text().strip() if sig.is_file() else ""
    return ModelInfo(name=name, version=ckpt.version, parent_version=ckpt.parent_version or "", sha256=digest,
                     signature=signature, uri=path.absolute().as_uri(), created_ns=path.stat().st_mtime_ns,
                     metrics=metrics)
