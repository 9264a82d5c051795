#!/usr/bin/env bash
# Install Node.js and npm (make test installs the third-party test servers of tests/npm with them), unless present.
set -euo pipefail

if command -v npm >/dev/null 2>&1; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y nodejs npm
