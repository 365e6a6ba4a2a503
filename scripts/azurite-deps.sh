#!/usr/bin/env bash
# Azurite, Microsoft's Azure Storage emulator, for the Azure Blob backend tests (tests/azure_blob/,
# fixture tests/azurite_fixture.py). Installed with npm into .axon/tools/azurite (gitignored);
# Node.js/npm come from apt only when `node` is missing.
# Idempotent: a second run finds everything in place and does nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${AXON_AZURITE_PREFIX:-$ROOT/.axon/tools/azurite}"
VERSION="${AXON_AZURITE_VERSION:-3.37.0}"
BIN="$PREFIX/node_modules/.bin/azurite-blob"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "azurite-deps: node/npm missing"
  apt_install nodejs npm
fi

if [ -x "$BIN" ] && [ "$(node -p "require('$PREFIX/node_modules/azurite/package.json').version" 2>/dev/null)" = "$VERSION" ]; then
  echo "azurite-deps: azurite $VERSION already installed in $PREFIX (node $(node --version))"
  exit 0
fi

echo "azurite-deps: installing azurite@$VERSION into $PREFIX"
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$VERSION"
test -x "$BIN"
echo "azurite-deps: installed $("$BIN" --version 2>/dev/null || echo "azurite $VERSION") at $BIN"
