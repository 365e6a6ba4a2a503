#!/usr/bin/env bash
# Debian packages the observability tests use: `prometheus` (the server, started by
# tests/observability/test_prometheus_scrape.py) and its `promtool` (rule checks and unit tests).
# Idempotent: installs only what is missing; uses sudo when not root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
apt_install prometheus
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# The package starts a system service on install; the tests start their own server on a free port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null && command -v prometheus >/dev/null
