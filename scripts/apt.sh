# Sourced by the *-deps.sh scripts: `apt_install PKG...` installs Debian packages, running
# `apt-get update` at most once per hour however many scripts ask (a fresh CI machine would
# otherwise refresh the package lists once per script). Uses sudo when not root.

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): this is not a Debian/Ubuntu system; install $* by hand" >&2
    return 1
  fi
  local sudo="" stamp="${AXON_APT_STAMP:-/tmp/axon-apt-lists-updated}"
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
    $sudo apt-get update -qq
    touch "$stamp"
  fi
  echo "$(basename "$0"): installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}
