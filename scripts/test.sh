#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): install what the tests need,
# then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# A target directory outside the clone, one per checkout path, so repeated runs reuse the build.
# It is keyed on the path because cargo decides freshness by file times: a newer build of
# another checkout in a shared directory would be taken as up to date, with that checkout's
# paths compiled in. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/chaoshub-target/$(pwd | sha256sum | cut -c1-12)}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

bash scripts/install-test-deps.sh

# Skip reasons: a test that cannot run something (shared data, a tool, a kernel feature) writes a
# `SKIP <test>: <reason>` line through chaoshub_testkit, which also appends it to this file; the
# lines are printed again at the end, whatever the result, where a reader of the log looks.
# CI=true turns a missing shared dependency into a failure instead.
CHAOSHUB_SKIP_LOG=$(mktemp -t chaoshub-skips.XXXXXX)
export CHAOSHUB_SKIP_LOG
skip_summary() {
  local status=$? skips
  skips=$(sort -u "$CHAOSHUB_SKIP_LOG")
  rm -f "$CHAOSHUB_SKIP_LOG"
  if [ -n "$skips" ]; then
    echo "==> skipped ($(printf '%s\n' "$skips" | wc -l)); each line says what is missing and how to provide it:"
    printf '%s\n' "$skips"
  else
    echo "==> nothing skipped"
  fi
  exit "$status"
}
trap skip_summary EXIT

echo "==> cargo deny check licenses bans sources (deny.toml)"
cargo fetch --locked
cargo deny --offline check licenses bans sources
# Path dependencies must stay inside the workspace (cargo-deny checks registries and git only).
cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
root = os.path.realpath(meta["workspace_root"])
outside = [p["name"] + " at " + p["manifest_path"] for p in meta["packages"]
           if p["source"] is None and not os.path.realpath(p["manifest_path"]).startswith(root + os.sep)]
sys.exit("path dependencies outside the workspace: " + ", ".join(outside) if outside else 0)
'
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test --workspace"
cargo test --workspace
