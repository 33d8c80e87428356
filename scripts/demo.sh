#!/usr/bin/env bash
# mcw's main job on one machine: a DNS server holding a memcached "StatefulSet", a template
# with DNS tokens, `mcw check` and `mcw render`, then a pod that moves to a new IP.
# Needs root (it installs dnsmasq if missing) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dnsmasq >/dev/null 2>&1 && [[ ! -x /usr/sbin/dnsmasq ]]; then
  echo "demo: installing dnsmasq-base" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null
fi
cargo build --release --locked -q
mcw=$PWD/target/release/mcw

work=$(mktemp -d)
dns_pid=
cleanup() { [[ -n $dns_pid ]] && kill "$dns_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_dns() { # $1: IP of pod mc-1
  [[ -n $dns_pid ]] && { kill "$dns_pid"; wait "$dns_pid" 2>/dev/null || true; }
  /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.1 --port="$port" --user=root --pid-file= --cache-size=0 --local-ttl=30 \
    --host-record=mc-0.memcache.demo,10.0.0.10 --host-record=mc-1.memcache.demo,"$1" \
    --host-record=mc-2.memcache.demo,10.0.0.12 \
    --srv-host=_memcache._tcp.memcache.demo,mc-2.memcache.demo,11211,10,1 \
    --srv-host=_memcache._tcp.memcache.demo,mc-0.memcache.demo,11211,10,1 \
    --srv-host=_memcache._tcp.memcache.demo,mc-1.memcache.demo,11211,10,1 \
    --host-record=shared.demo,10.0.1.2 --host-record=shared.demo,10.0.1.1 &
  dns_pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
  echo "demo: dnsmasq did not start" >&2; exit 1
}

cat >"$work/template.json" <<'JSON'
{
  // Pods of a StatefulSet behind a headless Service: one SRV record per pod.
  "pools": {
    "local": {"servers": ["dnssrv://_memcache._tcp.memcache.demo"]},
    "shared": {"servers": ["dns+11311://shared.demo", "10.9.9.9:11211"]},
  },
  "route": {
    "type": "PrefixSelectorRoute",
    "policies": {"shr": "PoolRoute|shared"},
    "wildcard": "PoolRoute|local",
  },
}
JSON

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
args=(--template "$work/template.json" --dns-server "127.0.0.1:$port" --resolv-conf /dev/null)

start_dns 10.0.0.11
say "the template"
cat "$work/template.json"
say "mcw check: what each token resolves to"
"$mcw" check "${args[@]}" --route-prefix /dc/c0/
say "mcw render --output config.json"
"$mcw" render "${args[@]}" --output "$work/config.json"
cat "$work/config.json"
say "pod mc-1 comes back with a new IP (10.0.0.11 -> 10.0.0.21); render again"
start_dns 10.0.0.21
"$mcw" render "${args[@]}" --output "$work/config.json"
grep -n '10.0.0' "$work/config.json"
say "only slot 1 of pool \"local\" changed: keys hashed to mc-0 and mc-2 stay where they are"
