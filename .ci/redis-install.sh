#!/usr/bin/env bash
# Install the Redis server the distributed test needs (tests/test_distributed.py starts its own on loopback),
# unless present. Idempotent: does nothing when redis-server is on PATH or in /usr/bin.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q redis-server
