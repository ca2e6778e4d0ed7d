#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: Debian packages and a Python
# virtual environment. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# The EWS client that the lab's fidelity check runs; the version whose requests the lab's
# reference samples were captured from.
EXCHANGELIB_VERSION=5.6.0

need_apt=()
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
# ldapsearch checks what a standard LDAP client sees of the lab's directory server.
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${need_apt[*]}; run this script as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if .venv/bin/python -c "import exchangelib, sys; sys.exit(exchangelib.__version__ != '$EXCHANGELIB_VERSION')" >/dev/null 2>&1; then
  echo "setup: .venv already has exchangelib $EXCHANGELIB_VERSION"
else
  echo "setup: creating .venv with exchangelib $EXCHANGELIB_VERSION"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "exchangelib==$EXCHANGELIB_VERSION"
fi
echo "setup: done"
