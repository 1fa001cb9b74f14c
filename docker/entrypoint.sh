#!/usr/bin/env bash
# Enter the built f2p environment (venv + workspace overlay), then run the container's command.
set -e
cd /opt/f2p
. ./env.sh
exec "$@"
