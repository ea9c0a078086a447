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


# --- The native agent: a real network fault, measured -------------------------------------
# A chaos-agent runs inside a network namespace this script creates (app), next to a peer
# namespace with a TCP echo service; the hub reaches the agent over a veth pair on the
# 198.18.0.0/15 test range. Nothing touches this host's own interfaces.
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
  echo
  echo "==> the native agent: a NetworkChaos delay between two network namespaces"
  cargo build -q -p chaos-agent --bin chaos-agent
  AGENT=$CARGO_TARGET_DIR/debug/chaos-agent
  APP=chaoshub-demo-app-$$
  PEER=chaoshub-demo-peer-$$
  netns_cleanup() {
    ip netns del "$APP" 2>/dev/null || true
    ip netns del "$PEER" 2>/dev/null || true
    ip link del chd-h$$ 2>/dev/null || true
  }
  trap 'cleanup; netns_cleanup' EXIT INT TERM
  ip netns add "$APP"; ip netns add "$PEER"
  ip link add chd-h$$ type veth peer name chd-a$$
  ip link set chd-a$$ netns "$APP"
  ip addr add 198.18.200.1/30 dev chd-h$$; ip link set chd-h$$ up
  ip -n "$APP" addr add 198.18.200.2/30 dev chd-a$$; ip -n "$APP" link set chd-a$$ up
  ip -n "$APP" link set lo up
  ip link add chd-p$$ type veth peer name chd-q$$
  ip link set chd-p$$ netns "$APP"; ip link set chd-q$$ netns "$PEER"
  ip -n "$APP" addr add 198.18.201.1/30 dev chd-p$$; ip -n "$APP" link set chd-p$$ up
  ip -n "$PEER" addr add 198.18.201.2/30 dev chd-q$$; ip -n "$PEER" link set chd-q$$ up
  ip -n "$PEER" link set lo up

  # The hub listens on the host end of the app namespace's veth too (its one port serves
  # REST and the agents' gRPC).
  "$BIN" serve --listen "198.18.200.1:$PORT" --data-dir "$DEMO/agent-data" 2>"$DEMO/hub-agent.log" &
  pids+=($!)
  AHUB="http://198.18.200.1:$PORT"
  for _ in $(seq 100); do "$BIN" --server "$AHUB" health >/dev/null 2>&1 && break; sleep 0.1; done
  ip netns exec "$PEER" python3 -c '
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.201.2", 7007)); s.listen(16)
def serve(c):
    while True:
        d = c.recv(64)
        if not d: break
        c.sendall(d)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
' &
  pids+=($!)
  cat >"$DEMO/agent-env.yaml" <<YAML
apiVersion: chaoshub.dev/v1alpha1
kind: Environment
metadata: {name: local-hosts}
spec: {adapter: native, description: chaos-agent daemons in this machine's demo namespaces}
YAML
  "$BIN" --server "$AHUB" apply -f "$DEMO/agent-env.yaml" >/dev/null
  # Agents join with a join token an admin creates for their environment; the hub then issues
  # the agent its own credential (kept in its state dir), so the token is needed only once.
  "$BIN" --server "$AHUB" env join-token local-hosts --expires 1h >"$DEMO/join.token" 2>/dev/null
  ip netns exec "$APP" "$AGENT" serve --hub "$AHUB" --env local-hosts --name app-1 \
    --label role=app --state-dir "$DEMO/agent-state" --join-token-file "$DEMO/join.token" \
    2>"$DEMO/agent.log" &
  pids+=($!)
  for _ in $(seq 100); do
    "$BIN" --server "$AHUB" -o json env targets local-hosts 2>/dev/null | grep -q app-1 && break
    sleep 0.1
  done
  echo "==> registered agents (GET /api/v1/agents):"
  # The API needs a token: the hub wrote its bootstrap admin token into its data dir.
  python3 -c 'import json,sys,urllib.request
token = open(sys.argv[2]).read().strip()
req = urllib.request.Request(sys.argv[1] + "/api/v1/agents", headers={"Authorization": "Bearer " + token})
for a in json.load(urllib.request.urlopen(req))["items"]:
    print("  %s  env=%s  health=%s  labels=%s  netem=%s" % (a["name"], a["environment"], a["health"], a["labels"], a["mechanisms"]["netem"]))' "$AHUB" "$DEMO/agent-data/admin.token" || true
  rtt() {
    ip netns exec "$APP" python3 -c '
import socket, time
c = socket.create_connection(("198.18.201.2", 7007), timeout=5)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = []
for _ in range(21):
    s = time.perf_counter(); c.sendall(b"x"); c.recv(1); t.append((time.perf_counter() - s) * 1000)
t.sort(); print(f"{t[10]:.1f} ms")'
  }
  echo "==> round trip app -> peer before the fault: $(rtt)"
  cat >"$DEMO/delay.yaml" <<YAML
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: slow-peer}
spec:
  environment: local-hosts
  action: delay
  mode: all
  selector:
    labelSelectors: {role: app}
  externalTargets: ["198.18.201.2"]
  delay: {latency: 100ms, jitter: 5ms}
  duration: 8s
YAML
  "$BIN" --server "$AHUB" apply -f "$DEMO/delay.yaml" --wait
  echo "==> round trip during the 100ms delay:    $(rtt)"
  "$BIN" --server "$AHUB" describe experiment slow-peer | sed -n '1,40p'
  for _ in $(seq 200); do
    phase=$("$BIN" --server "$AHUB" -o json get experiments | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["status"]["phase"])')
    [ "$phase" = "Finished" ] && break
    sleep 0.1
  done
  echo "==> experiment $phase; round trip after recovery: $(rtt)"
else
  echo
  echo "(skipping the native-agent part: it needs root and iproute2 to create network namespaces)"
fi

if [ -t 0 ]; then
  echo
  echo "The hub keeps serving on $HUB_URL (try: CHAOSHUB_SERVER=$HUB_URL $BIN get adapters). Ctrl-C stops it."
  wait "${pids[1]}"
fi
