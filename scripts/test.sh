#!/usr/bin/env bash
# Runs mcw's whole test suite on a Debian machine, installing first what the tests start as
# real components (DNS servers, memcached, init systems to compare with). Needs root: tests
# mount a tmpfs and create PID namespaces, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: run as root (tests mount tmpfs and use PID namespaces): sudo $0" >&2
  exit 2
fi

# package:command pairs; install only what is missing.
missing=()
for pair in dnsmasq-base:dnsmasq knot:knotd memcached:memcached tini:tini dumb-init:dumb-init \
  prometheus:prometheus; do
  command -v "${pair#*:}" >/dev/null 2>&1 || [[ -x /usr/sbin/${pair#*:} ]] || missing+=("${pair%%:*}")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts services on install; tests start their own on loopback ports.
for svc in memcached knot dnsmasq prometheus; do
  systemctl stop "$svc" >/dev/null 2>&1 || true
done

cargo test --locked --workspace --lib --bins --tests "$@"
