#!/usr/bin/env bash
# Regenerates the README's console screenshots from the browser tests' artifacts: runs the
# console's browser test (headless Chromium, see scripts/install-test-deps.sh), then copies three
# of the screenshots it saved under <target>/console-screenshots/ into docs/images/.
# Usage: scripts/screenshots.sh [--no-run]   (--no-run: copy what the last test run saved)
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
if [ "${1:-}" != "--no-run" ]; then
  CI=true cargo test -p chaoshub-e2e --test e2e -- \
    e2e::console::console_drives_a_fault_from_editor_to_stop_and_halts --exact
  CI=true cargo test -p chaoshub-e2e --test e2e -- \
    e2e::console_builder::console_builder_drags_a_workflow_and_runs_it_on_toxiproxy --exact
fi
shots="$target/console-screenshots"
mkdir -p docs/images
for pair in "05-overview-faults-in-force:console-overview" "04-experiment-detail:console-experiment" \
  "builder-03-running:console-workflow-builder"; do
  from="$shots/${pair%%:*}.png"
  to="docs/images/${pair##*:}.png"
  if [ ! -s "$from" ]; then
    echo "screenshots: $from is missing; run the console browser test first" >&2
    exit 1
  fi
  cp "$from" "$to"
  echo "screenshots: $to"
done
