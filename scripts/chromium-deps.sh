#!/usr/bin/env bash
# Debian packages the browser tests need: chromium + chromium-driver (Playwright drives the
# system chromium; `playwright install` is never run). Idempotent: does nothing when
# /usr/bin/chromium exists. Uses sudo when not root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
apt_install chromium chromium-driver
test -x /usr/bin/chromium
