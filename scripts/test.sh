#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the end-to-end tests against the lab, and the
# conformance suites. Run scripts/setup.sh once before.
#
# SIU_SAMBA=1        also run the directory suite against a real Samba AD DC (needs root;
#                    scripts/samba-ad.sh installs and starts it, and this script stops it)
# SIU_REQUIRE_PY=1   fail instead of skipping when the exchangelib environment is missing
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SIU_SAMBA:-0}" = 1 ]; then
  trap 'bash scripts/samba-ad.sh stop >/dev/null 2>&1 || true' EXIT
fi
cargo test --workspace --all-targets
