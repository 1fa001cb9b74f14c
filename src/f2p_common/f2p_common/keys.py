"""Ed25519 keys and signatures: the one home of f2p's signing primitives (``cryptography``).

Who signs what (the README's "Models and keys"): the learner signs the weights files it deploys
(``f2p_common.weights``) and the commands it sends to a robot (``f2p_common.commands``); an
operator signs the commands they send. A key pair is a private PEM (mode 0600 from its creation,
never overwritten) and ``<private>.pub``. A public key is named by its :func:`key_id`, the first
16 hex digits of the SHA-256 of its raw bytes, so a verifier with several trusted keys knows
which one to check. Every signed message starts with its kind (a weights format, a command
format), so a signature made for one kind never verifies another. :class:`SignatureError`
says what is wrong.

cryptography is imported by the functions that need it, so that importing ``f2p_common`` stays light.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from f2p_common.files import write_atomic


class SignatureError(Exception):
    """A key that cannot be read, or a signature that is missing or does not verify."""


def generate_key_pair(private_key: str | os.PathLike) -> Path:
    """Write a new Ed25519 key pair: ``private_key`` (PEM, mode 0600 from its creation) and
    ``<private_key>.pub`` (PEM, to install where signatures are checked); returns the public
    key's path. An existing file is never overwritten (FileExistsError)."""
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
    write_atomic(private_key, pem, mode=0o600)
    write_atomic(public_key, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_key


def _private(path: str | os.PathLike):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise SignatureError(f"cannot read the signing key {path}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return key


def _public(path: str | os.PathLike):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise SignatureError(f"cannot read the public key {path}: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path} is not an Ed25519 public key")
    return key


def key_id(public_key: str | os.PathLike) -> str:
    """The public key's name: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization
    raw = _public(public_key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_of(private_key: str | os.PathLike) -> str:
    """The :func:`key_id` of a private key's public half."""
    from cryptography.hazmat.primitives import serialization
    raw = _private(private_key).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key: str | os.PathLike, message: bytes) -> str:
    """The Ed25519 signature (hex) of ``message`` by the private key (PEM) at ``private_key``."""
    return _private(private_key).sign(message).hex()


def verify(public_key: str | os.PathLike, message: bytes, signature: str, what: str = "message") -> None:
    """SignatureError unless ``signature`` (hex) is the public key's owner's signature of ``message``."""
    from cryptography.exceptions import InvalidSignature
    if not signature:
        raise SignatureError(f"the {what} is not signed, and signatures are required")
    try:
        _public(public_key).verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError):
        raise SignatureError(f"bad signature for the {what}: not signed by the key {public_key}, or changed after "
                             "signing") from None
