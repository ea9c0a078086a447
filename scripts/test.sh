#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): install what the tests need,
# then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fixed target directory outside the clone, so repeated runs (and CI on this machine) reuse
# the build. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/chaoshub-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

bash scripts/install-test-deps.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test --workspace"
cargo test --workspace
