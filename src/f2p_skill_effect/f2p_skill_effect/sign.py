"""``f2p-sign``: make a signing key pair, or sign a weights file (Ed25519, ``f2p_common.weights``).

    f2p-sign keygen /secure/f2p_signing_key.pem          # and .pem.pub for the robots
    f2p-sign sign model.pt --key /secure/f2p_signing_key.pem   # writes model.pt.sig

Any f2p weights file signs: a skill-effect checkpoint (checked to load as one first) or an AFIL
controller. A robot's planner with ``require_signed`` refuses every checkpoint without a
signature by the private key whose public half it is configured with.
"""
from __future__ import annotations

import argparse
import sys

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
    a = p.parse_args(argv)
    try:
        if a.command == "keygen":
            print(f"f2p-sign: wrote {a.private_key} and {generate_signing_key(a.private_key)}")
        else:
            fmt = read_weights_file(a.checkpoint, None)[0]["format"]
            sign = sign_checkpoint if fmt == FORMAT else sign_weights_file
            print(f"f2p-sign: {a.checkpoint}.sig {sign(a.checkpoint, a.key)}")
    except (CheckpointError, OSError) as e:
        print(f"f2p-sign: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
