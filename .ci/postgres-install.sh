#!/usr/bin/env bash
# Install the PostgreSQL server binaries the tests need (initdb, pg_ctl), unless present.
# Idempotent: does nothing when initdb is on PATH or under /usr/lib/postgresql/*/bin.
set -euo pipefail

if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y postgresql
