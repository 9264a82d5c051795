#!/usr/bin/env bash
# The browser tests drive Debian's Chromium with Playwright (no browser download): install it when missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
