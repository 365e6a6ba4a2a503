#!/usr/bin/env bash
# Debian packages the browser tests need: chromium + chromium-driver (Playwright drives the
# system chromium; `playwright install` is never run). Idempotent: does nothing when
# /usr/bin/chromium exists. Uses sudo when not root.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
test -x /usr/bin/chromium
