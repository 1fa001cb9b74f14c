"""The one weights-file format of every learned f2p model, and its signatures.

Γ's checkpoints (``f2p_skill_effect.checkpoint``) and AFIL's controllers
(``f2p_afil.checkpoint``) are both this file, told apart by ``format``: one ``torch.save`` file
of tensors and strings only::

    {"format": "<format>", "metadata": "<JSON text>", "state_dict": {name: tensor, ...}}

so it loads with ``torch.load(weights_only=True)``: no pickled code ever runs. The metadata
carries ``content_sha256``, a digest over the metadata and every tensor's bytes; beside the file,
``<file>.sha256`` holds the file's SHA-256 in ``sha256sum`` format. Writing is durable and
atomic (``f2p_common.files.write_atomic``). A check that fails raises :class:`CheckpointError`
saying which.

Signatures (Ed25519, ``f2p_common.keys``): :func:`sign_weights_file` signs
``"<format>:sha256:<file SHA-256>"`` with a private key and writes it hex-encoded to
``<file>.sig``; :func:`verify_signature` checks one against a public key (PEM), so a robot can
refuse weights its learner did not sign. The format is part of what is signed, so a signature
made for one kind of model never verifies another. :func:`generate_signing_key` writes a key pair.

torch and cryptography are imported by the functions that need them, so that importing
``f2p_common`` stays light.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

from f2p_common import keys
from f2p_common.files import file_sha256, write_atomic


class CheckpointError(Exception):
    """Weights that cannot be trusted or used: missing, truncated, tampered with, unsigned, or
    made for another architecture, vocabulary or convention."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """``<file>.sha256``: the file's SHA-256 in ``sha256sum`` format."""
    return Path(str(path) + ".sha256")


def signature_path(path: str | os.PathLike) -> Path:
    """``<file>.sig``: the hex Ed25519 signature of the file (:func:`sign_weights_file`)."""
    return Path(str(path) + ".sig")


def content_digest(metadata_wo_digest: dict, state_dict: dict) -> str:
    """SHA-256 over the metadata (canonical JSON) and every tensor's name, dtype, shape and bytes."""
    import torch
    h = hashlib.sha256()
    h.update(json.dumps(metadata_wo_digest, sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode() + b"\0" + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_weights_file(path: str | os.PathLike, fmt: str, meta: dict, state_dict: dict) -> str:
    """Write ``{"format", "metadata" (JSON with a content digest), "state_dict"}`` durably and
    atomically, then the ``.sha256`` sidecar; returns the file's SHA-256. (A crash in between
    leaves a file whose sidecar does not match: it loads as corrupt, never as another model.)"""
    import torch
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


def read_weights_file(path: str | os.PathLike, fmt: str | None, require_sidecar: bool = True) -> tuple[dict, dict]:
    """(metadata without its digest, state_dict) of a :func:`write_weights_file` file, verified:
    the sidecar's SHA-256, a weights-only load (no pickled code runs), the format (``fmt``; None
    takes any, and ``metadata["format"]`` says which), the content digest. The file is read once:
    what is checked is what is loaded."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    data = path.read_bytes()
    side = sidecar_path(path)
    if side.is_file():
        words = side.read_text().split()
        want = words[0] if words else ""
    elif require_sidecar:
        raise CheckpointError(f"{path}: missing {side.name}; cannot verify the file's integrity")
    else:
        want = None
    return read_weights_bytes(data, fmt, str(path), want)


def read_weights_bytes(data: bytes, fmt: str | None, name: str = "checkpoint",
                       sha256: str | None = None) -> tuple[dict, dict]:
    """:func:`read_weights_file` on bytes already in memory (``name`` says which in errors): the
    bytes' SHA-256 must be ``sha256`` when given. A caller that verified a signature over these
    bytes loads exactly them, never a second read of a file that may have changed meanwhile."""
    import torch
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256.lower():
            raise CheckpointError(f"{name}: SHA-256 {got} does not match the expected {sha256}: "
                                  "file truncated or modified after it was written")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle content, ... all mean "unusable"
        raise CheckpointError(f"{name}: not a readable weights-only checkpoint ({type(e).__name__}: {e})") from e
    found = obj.get("format") if isinstance(obj, dict) else None
    if not isinstance(found, str) or (fmt is not None and found != fmt):
        raise CheckpointError(f"{name}: format {found if isinstance(obj, dict) else type(obj)!r}, "
                              f"expected {fmt or 'an f2p weights file'!r}")
    try:
        meta = json.loads(obj["metadata"])
        sd = obj["state_dict"]
        if not isinstance(meta, dict) or not isinstance(sd, dict):
            raise TypeError("metadata is not a JSON object or state_dict not a dict")
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name}: malformed checkpoint ({e})") from e
    digest = meta.pop("content_sha256", None)
    if meta.get("format") != found or digest != content_digest(meta, sd):
        raise CheckpointError(f"{name}: content digest mismatch: metadata or weights were modified")
    return meta, sd


#: File suffixes of pickle-based weights (torch.save / pickle / joblib): never loaded by f2p.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def refuse_pickled_weights(folder: str | os.PathLike) -> None:
    """CheckpointError when a model folder (Hugging Face layout) holds pickle-based weight files:
    such a folder is loaded from safetensors only, and a stray ``pytorch_model.bin`` or
    ``adapter_model.bin`` is refused rather than left for a library to fall back on."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    found = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise CheckpointError(f"{folder} holds pickle-based weights ({', '.join(found)}): f2p loads model folders "
                              "from safetensors only (save_pretrained(safe_serialization=True))")


# ---------------------------------------------------------------------------- signatures
def signed_message(fmt: str, sha256: str) -> bytes:
    """What a signature covers: the format and the file's SHA-256 (hex)."""
    return f"{fmt}:sha256:{sha256}".encode()


def generate_signing_key(private_key: str | os.PathLike) -> Path:
    """Write a new Ed25519 key pair (``f2p_common.keys.generate_key_pair``): ``private_key``
    (PEM, mode 0600 from its creation) and ``<private_key>.pub``; returns the public key's path."""
    return keys.generate_key_pair(private_key)


def sign_weights_file(path: str | os.PathLike, private_key: str | os.PathLike, fmt: str | None = None) -> str:
    """Sign the weights file at ``path`` (verified first; of format ``fmt`` when given) with the
    Ed25519 ``private_key`` (PEM); writes ``<path>.sig`` and returns the signature (hex)."""
    meta, _sd = read_weights_file(path, fmt)
    try:
        signature = keys.sign(private_key, signed_message(meta["format"], file_sha256(path)))
    except keys.SignatureError as e:
        raise CheckpointError(str(e)) from None
    write_atomic(signature_path(path), signature + "\n")
    return signature


def verify_signature(fmt: str, sha256: str, signature: str, public_key: str | os.PathLike) -> None:
    """CheckpointError unless ``signature`` (hex) is the Ed25519 signature, by the key whose public
    half is ``public_key`` (PEM file), of a weights file of format ``fmt`` with this ``sha256``."""
    if not signature:
        raise CheckpointError("the checkpoint is not signed, and signatures are required")
    try:
        keys.verify(public_key, signed_message(fmt, sha256), signature, f"{fmt} sha256 {sha256[:16]}...")
    except keys.SignatureError as e:
        raise CheckpointError(str(e)) from None


def read_signature(path: str | os.PathLike) -> str:
    """The hex signature beside the file (``<file>.sig``), or '' when it is not signed."""
    sig = signature_path(path)
    return sig.read_text().strip() if sig.is_file() else ""
