#!/usr/bin/env bash
# What `make demo` needs to run each robot and the cloud as OS users of their own (as root, as CI
# runs it): useradd (passwd) to create them, setfacl (acl) to let only them through a directory
# that holds the Python or the checkout but is closed to other users (e.g. a pyenv under /root).
# Installed only when missing and only as root: elsewhere the demo runs without isolation and says why.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

[ "$(id -u)" -eq 0 ] || exit 0
need=()
command -v useradd >/dev/null 2>&1 || need+=(passwd)
command -v setfacl >/dev/null 2>&1 || need+=(acl)
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}" || echo "demo-deps: could not install ${need[*]}; the demo will run without isolation" >&2
fi
