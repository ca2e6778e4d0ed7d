#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the end-to-end tests against the lab, and the
# conformance suites. Run scripts/setup.sh once before.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
