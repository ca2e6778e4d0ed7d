#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: Debian packages and a Python
# virtual environment. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
# ldapsearch checks what a standard LDAP client sees of the lab's directory server.
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${need_apt[*]}; run this script as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
echo "setup: done"
