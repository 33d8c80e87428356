#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, one after the other (the list below; a test holds it to
# Cargo.toml's), then the binary and package sizes. Installs what they start (dnsmasq, memcached, tini, dumb-init, dig)
# when missing; needs root for that. Takes about 20 minutes, most of it the 10-minute flapping
# answer of the scale benchmark (MCW_BENCH_FLAP_SECS shortens it) and the idle runs.
#
#   scripts/bench.sh 2>&1 | tee bench.log
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
apt_missing bench.sh dnsmasq-base:dnsmasq memcached:memcached tini:tini dumb-init:dumb-init \
  bind9-dnsutils:dig

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(git describe --always --dirty), $(nproc) cores," \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "== $(tini --version), $(dumb-init --version 2>&1), $(dig -v 2>&1)"
BENCHES=(render watch run placement reload restart warmup scale)
for bench in "${BENCHES[@]}"; do
  stage "cargo bench --bench $bench" cargo bench --locked --quiet --bench "$bench"
done
stage "packages (scripts/package.sh)" bash -c "./scripts/package.sh >/dev/null"
echo "binary: $(stat -c %s target/release/mcw) bytes (target/release/mcw)"
for p in target/debian/*.deb target/generate-rpm/*.rpm; do
  echo "package: $(stat -c %s "$p") bytes ($p)"
done
