"""``f2p-sign``: make a signing key pair, or sign a weights file (Ed25519, ``f2p_common.weights``).

    f2p-sign keygen /secure/f2p_signing_key.pem          # and .pem.pub for the robots
    f2p-sign sign model.pt --key /secure/f2p_signing_key.pem   # writes model.pt.sig
    f2p-sign command rollback_model --key /secure/alice.pem --robot stretch     # an authorisation
    f2p-sign command swap_model --key /secure/alice.pem --robot stretch --model model.pt

Any f2p weights file signs: a skill-effect checkpoint (checked to load as one first) or an AFIL
controller. A robot's planner with ``require_signed`` refuses every checkpoint without a
signature by the private key whose public half it is configured with.

``command`` prints the ``auth`` of a signed command (``f2p_common.commands``) as YAML, valid
for the planner's ``command_max_age_s`` (60 s) and once, to paste into
``ros2 service call /rollback_model f2p_interfaces/srv/RollbackModel "{auth: ...}"``; the key's
``.pub`` must be among the planner's ``command_keys``.
"""
from __future__ import annotations

import argparse
import sys

from f2p_common.commands import COMMANDS, sign_command
from f2p_common.files import file_sha256
from f2p_common.keys import SignatureError
from f2p_common.weights import CheckpointError, generate_signing_key, read_weights_file, sign_weights_file

from .checkpoint import FORMAT, sign_checkpoint


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="f2p-sign", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen", help="write an Ed25519 key pair (private PEM and <file>.pub)")
    k.add_argument("private_key")
    s = sub.add_parser("sign", help="sign a weights file: writes <checkpoint>.sig")
    s.add_argument("checkpoint")
    s.add_argument("--key", required=True, help="the private key (PEM)")
    c = sub.add_parser("command", help="print a signed command's auth (YAML) for swap_model / rollback_model")
    c.add_argument("name", choices=COMMANDS)
    c.add_argument("--key", required=True, help="the private key (PEM) of an authorised operator")
    c.add_argument("--robot", required=True, help="the planner's robot_id")
    c.add_argument("--model", default="", help="swap_model: the checkpoint to install (its SHA-256 is signed)")
    a = p.parse_args(argv)
    try:
        if a.command == "keygen":
            print(f"f2p-sign: wrote {a.private_key} and {generate_signing_key(a.private_key)}")
        elif a.command == "command":
            if (a.name == "swap_model") != bool(a.model):
                p.error("swap_model needs --model, rollback_model takes none")
            cmd = sign_command(a.key, a.name, a.robot, file_sha256(a.model) if a.model else "")
            print(f"auth: {{key_id: '{cmd.key_id}', stamp: {{sec: {cmd.stamp_ns // 10**9}, nanosec: "
                  f"{cmd.stamp_ns % 10**9}}}, nonce: '{cmd.nonce}', signature: '{cmd.signature}'}}")
        else:
            fmt = read_weights_file(a.checkpoint, None)[0]["format"]
            sign = sign_checkpoint if fmt == FORMAT else sign_weights_file
            print(f"f2p-sign: {a.checkpoint}.sig {sign(a.checkpoint, a.key)}")
    except (CheckpointError, SignatureError, OSError) as e:
        print(f"f2p-sign: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
