#!/usr/bin/env bash
# The README's first command: build the hub, start it on its embedded defaults with a local
# plugin environment (the fsfault example plugin), and show an experiment injected, confirmed,
# observed on disk and removed on time. In a terminal the hub keeps serving afterwards until
# Ctrl-C; otherwise the script stops everything it started and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/chaoshub-target/$(pwd | sha256sum | cut -c1-12)}
PORT=${CHAOSHUB_DEMO_PORT:-7070}
DEMO=$ROOT/.chaoshub-demo
HUB_URL="http://127.0.0.1:$PORT"

command -v python3 >/dev/null || bash scripts/install-test-deps.sh

echo "==> building chaoshub"
cargo build -q -p chaoshub --bin chaoshub
BIN=$CARGO_TARGET_DIR/debug/chaoshub

rm -rf "$DEMO"
mkdir -p "$DEMO/web" "$DEMO/db" "$DEMO/plugin-state"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "==> starting the fsfault plugin (a local environment with real filesystem faults)"
python3 examples/plugins/fsfault/fsfault.py --listen 127.0.0.1:0 --port-file "$DEMO/plugin.port" \
  --target web="$DEMO/web" --target db="$DEMO/db" \
  --label web:tier=frontend --label db:tier=storage \
  --state-dir "$DEMO/plugin-state" --grace-secs 30 2>"$DEMO/plugin.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$DEMO/plugin.port" ] && break; sleep 0.1; done
PLUGIN_URL="http://127.0.0.1:$(cat "$DEMO/plugin.port")"

echo "==> starting the hub on $HUB_URL (embedded SQLite store in $DEMO/data)"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DEMO/data" 2>"$DEMO/hub.log" &
pids+=($!)
for _ in $(seq 100); do "$BIN" --server "$HUB_URL" health >/dev/null 2>&1 && break; sleep 0.1; done
export CHAOSHUB_SERVER=$HUB_URL

cat >"$DEMO/lab.yaml" <<YAML
apiVersion: chaoshub.dev/v1alpha1
kind: Environment
metadata: {name: fs-lab}
spec:
  adapter: webhook
  endpoint: $PLUGIN_URL
  description: local filesystem faults through the fsfault example plugin
---
apiVersion: chaos-mesh.org/v1alpha1
kind: PhysicalMachineChaos
metadata: {name: fill-web-disk}
spec:
  environment: fs-lab
  action: disk-fill
  mode: all
  selector:
    labelSelectors: {tier: frontend}
  disk-fill: {size: 50MB}
  duration: 8s
YAML

echo "==> chaoshub apply -f lab.yaml --wait   (returns once the plugin confirmed the fault)"
"$BIN" apply -f "$DEMO/lab.yaml" --wait
echo
echo "==> the fault, seen on disk:"
ls -l "$DEMO/web"
echo
"$BIN" get experiments
echo
"$BIN" describe experiment fill-web-disk
echo
echo "==> waiting for the 8s duration to end"
for _ in $(seq 200); do
  phase=$("$BIN" -o json get experiments | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["status"]["phase"])')
  [ "$phase" = "Finished" ] && break
  sleep 0.1
done
"$BIN" get experiments
echo
echo "==> after recovery the fill file is gone:"
ls -l "$DEMO/web"
echo
"$BIN" events --experiment fill-web-disk

if [ -t 0 ]; then
  echo
  echo "The hub keeps serving on $HUB_URL (try: CHAOSHUB_SERVER=$HUB_URL $BIN get adapters). Ctrl-C stops it."
  wait "${pids[1]}"
fi
