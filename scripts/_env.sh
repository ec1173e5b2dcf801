# Shared by scripts/run and scripts/test: Debian packages (when root), the virtualenv, the project installed.
# Sourced, not run. Python >= 3.11 is required; Debian 12's python3 is 3.11.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need_debs() {
  # Install the Debian packages that are missing (only when root; otherwise say what is missing).
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages (run as root to install them): ${missing[*]}" >&2
  fi
}

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  need_debs python3 python3-venv
fi

setup_venv() {
  # $1: the extras to install, e.g. "test"
  local stamp=".venv/.installed-$1" 
  if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[$1]"
    touch "$stamp"
  fi
}
