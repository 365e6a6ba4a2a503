#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when they are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

need=()
have() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL server binaries: the store suite starts a throwaway cluster itself.
if ! have initdb && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi

if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}"
fi
