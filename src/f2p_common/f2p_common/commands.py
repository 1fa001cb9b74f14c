"""Signed commands: what changes the model a robot runs (``swap_model``, ``rollback_model``) is
refused unless an authorised key signed it, for this robot, this model, recently, once
(issue 43: anyone on the ROS domain could swap or roll back the robot's model).

A :class:`SignedCommand` is signed (Ed25519, ``f2p_common.keys``) over the text::

    f2p-command/1
    <command>          swap_model | rollback_model
    <robot>            the robot's id (the planner's robot_id)
    <model sha256>     the model the command installs ('' for a rollback)
    <stamp ns>         when it was signed (ns since the epoch)
    <nonce>            random, never used twice

:func:`sign_command` makes one with a private key. :class:`CommandVerifier` holds the robot's
authorised public keys (by :func:`f2p_common.keys.key_id`) and refuses, with
:class:`CommandRefused` saying why: a missing signature, a key it does not hold, another robot,
command or model, a stamp more than ``max_age_s`` from its clock, a nonce it has seen (a
replay), a signature that does not verify. No ROS.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from f2p_common import keys

COMMAND_FORMAT = "f2p-command/1"
COMMANDS = ("swap_model", "rollback_model")


class CommandRefused(Exception):
    """A command refused, and why."""


@dataclass(frozen=True)
class SignedCommand:
    """An authorisation (module docstring): the signer's ``key_id``, ``stamp_ns``, ``nonce`` and
    ``signature`` (hex), for ``command`` on ``robot`` installing the model ``model_sha256``."""

    command: str
    robot: str
    model_sha256: str
    stamp_ns: int
    nonce: str
    key_id: str
    signature: str = ""

    def message(self) -> bytes:
        return "\n".join((COMMAND_FORMAT, self.command, self.robot, self.model_sha256.lower(), str(int(self.stamp_ns)),
                          self.nonce)).encode()


def sign_command(private_key: str | os.PathLike, command: str, robot: str, model_sha256: str = "",
                 stamp_ns: int | None = None, nonce: str | None = None) -> SignedCommand:
    """``command`` for ``robot`` (installing ``model_sha256``) signed now by ``private_key``."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    cmd = SignedCommand(command, robot, model_sha256.lower(), time.time_ns() if stamp_ns is None else int(stamp_ns),
                        nonce or secrets.token_hex(16), keys.public_key_of(private_key))
    return replace(cmd, signature=keys.sign(private_key, cmd.message()))


class CommandVerifier:
    """The robot ``robot``'s check of commands (module docstring): ``public_keys`` are the
    authorised keys (PEM files)."""

    def __init__(self, robot: str, public_keys: list[str | os.PathLike], max_age_s: float = 60.0):
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self.robot, self.max_age_s = robot, max_age_s
        self.keys = {keys.key_id(k): Path(k) for k in public_keys}
        if not self.keys:
            raise ValueError("signed commands need at least one authorised public key")
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def verify(self, cmd: SignedCommand, command: str, model_sha256: str = "", now_ns: int | None = None) -> str:
        """The authorising key's file name when ``cmd`` authorises ``command`` (installing
        ``model_sha256``) on this robot now; CommandRefused otherwise."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if not cmd.signature:
            raise CommandRefused(f"{command} is not signed, and this robot requires signed commands")
        key = self.keys.get(cmd.key_id)
        if key is None:
            raise CommandRefused(f"{command} signed by key {cmd.key_id or '(none)'}, which this robot does not "
                                 f"authorise (it authorises {', '.join(sorted(self.keys))})")
        if cmd.command != command or cmd.robot != self.robot or cmd.model_sha256.lower() != model_sha256.lower():
            raise CommandRefused(f"the signature authorises {cmd.command} on robot {cmd.robot!r} of model "
                                 f"{cmd.model_sha256[:16] or '-'}, not {command} on {self.robot!r} of "
                                 f"{model_sha256[:16] or '-'}")
        age = (now_ns - int(cmd.stamp_ns)) / 1e9
        if abs(age) > self.max_age_s:
            raise CommandRefused(f"{command} signed {age:.0f} s from now; a command is valid for {self.max_age_s:g} s")
        try:
            keys.verify(key, cmd.message(), cmd.signature, command)
        except keys.SignatureError as e:
            raise CommandRefused(str(e)) from None
        with self._lock:
            horizon = now_ns - int(2 * self.max_age_s * 1e9)
            self._seen = {k: t for k, t in self._seen.items() if t > horizon}
            if (cmd.key_id, cmd.nonce) in self._seen:
                raise CommandRefused(f"{command}: nonce {cmd.nonce[:12]}... was used already (a replay)")
            self._seen[(cmd.key_id, cmd.nonce)] = int(cmd.stamp_ns)
        return key.name
