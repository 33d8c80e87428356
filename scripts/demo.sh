#!/usr/bin/env bash
# mcw's main job on one machine, end to end:
#   a DNS server (dnsmasq) holding a memcached "StatefulSet" (three pods, SRV records),
#   three real memcached, and `mcw run` supervising mcrouter (a real mcrouter when one is
#   found: $MCW_TEST_MCROUTER, else mcrouter on PATH; else the project's
#   stand-in). Keys are written through mcrouter, one pod moves to a new IP, mcw renders,
#   writes and confirms mcrouter's reload, and the keys on the other pods are still where
#   they were.
# Needs root (it installs dnsmasq and memcached if missing) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
apt_missing demo memcached:memcached dnsmasq-base:dnsmasq
cargo build --release --locked -q -p mcw -p mcrouter-standin
mcw=$PWD/target/release/mcw
# A real mcrouter when there is one (as the tests look for it), else the project's stand-in.
if mcrouter=$(real_mcrouter); then
  which_mcrouter="the real mcrouter, $("$mcrouter" --version)"
else
  mcrouter=$PWD/target/release/mcrouter
  which_mcrouter="the project's stand-in (no real mcrouter found)"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dns_port=$(free_port); mc_port=$(free_port); router_port=$(free_port)
fail() { echo "demo: FAILED: $*" >&2; cat "$work/mcw.log" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_log() { for _ in $(seq 300); do grep -q "$1" "$work/mcw.log" && return; sleep 0.1; done; fail "mcw never logged '$1'"; }
keys() { # keys set|count HOST:PORT — write user:1..30, or count how many of them HOST:PORT has
  python3 - "$1" "$2" <<'PY'
import socket, sys
mode, addr = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)))
f = s.makefile("rwb")
found = 0
for i in range(1, 31):
    if mode == "set":
        f.write(b"set user:%d 0 0 5\r\nhello\r\n" % i); f.flush(); f.readline()
    else:
        f.write(b"get user:%d\r\n" % i); f.flush()
        line = f.readline()
        if line.startswith(b"VALUE"):
            found += 1; f.readline(); f.readline()
print(found)
PY
}

dns_pid=
start_dns() { # $1: IP of pod mc-1
  [[ -n $dns_pid ]] && { kill "$dns_pid"; wait "$dns_pid" 2>/dev/null || true; }
  /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.1 --port="$dns_port" --user=root --pid-file= --cache-size=0 --local-ttl=1 \
    --host-record=mc-0.memcache.demo,127.0.2.10 --host-record=mc-1.memcache.demo,"$1" \
    --host-record=mc-2.memcache.demo,127.0.2.12 \
    --srv-host=_memcache._tcp.memcache.demo,mc-2.memcache.demo,"$mc_port",10,1 \
    --srv-host=_memcache._tcp.memcache.demo,mc-0.memcache.demo,"$mc_port",10,1 \
    --srv-host=_memcache._tcp.memcache.demo,mc-1.memcache.demo,"$mc_port",10,1 2>/dev/null &
  dns_pid=$!; pids+=("$dns_pid")
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$dns_port") 2>/dev/null && return; sleep 0.05; done
  echo "demo: dnsmasq did not start" >&2; exit 1
}

for ip in 127.0.2.10 127.0.2.11 127.0.2.12 127.0.2.21; do
  memcached -U 0 -u root -m 16 -l "$ip" -p "$mc_port" & pids+=($!)
done
start_dns 127.0.2.11

cat >"$work/template.json" <<'JSON'
{
  // Pods of a StatefulSet behind a headless Service: one SRV record per pod.
  "pools": {
    "local": {"servers": ["dnssrv://_memcache._tcp.memcache.demo"]},
  },
  "route": "PoolRoute|local",
}
JSON
say "the template"
cat "$work/template.json"

say "mcw run -- mcrouter -p $router_port   (mcrouter: $which_mcrouter)"
echo "  $mcrouter"
# mcrouter's own files (config dumps, stats, spool) go to the demo's directory, not /var.
mkdir -p "$work/mcrouter"
MCW_LOG=info "$mcw" run --template "$work/template.json" --output "$work/mcrouter.json" \
  --dns-server "127.0.0.1:$dns_port" --resolv-conf /dev/null --min-refresh 1s -- \
  "$mcrouter" -p "$router_port" --listen-addresses=127.0.0.1 \
  --config-dump-root="$work/mcrouter" --stats-root="$work/mcrouter" --async-dir="$work/mcrouter" \
  --debug-fifo-root= 2>"$work/mcw.log" &
mcw_pid=$!; pids+=("$mcw_pid")
wait_log "mcrouter runs the new config"
grep "mcw::" "$work/mcw.log"
say "the rendered config mcrouter runs"
cat "$work/mcrouter.json"

say "write 30 keys through mcrouter"
keys set "127.0.0.1:$router_port" >/dev/null
declare -A held
for pod in 0 1 2; do
  held[$pod]=$(keys count "127.0.2.1$pod:$mc_port")
  echo "  pod mc-$pod (127.0.2.1$pod) holds ${held[$pod]} keys"
done
((held[0] + held[1] + held[2] == 30)) || fail "the three pods hold $((held[0] + held[1] + held[2])) keys, not 30"

say "pod mc-1 is rescheduled and comes back with a new IP: 127.0.2.11 -> 127.0.2.21"
start_dns 127.0.2.21
for _ in $(seq 300); do [[ $(grep -c "mcrouter runs the new config" "$work/mcw.log") -ge 2 ]] && break; sleep 0.1; done
[[ $(grep -c "mcrouter runs the new config" "$work/mcw.log") -ge 2 ]] || fail "mcrouter never confirmed the new config"
grep -E "pool servers changed|wrote config|mcrouter runs the new config" "$work/mcw.log" | tail -3

say "read the 30 keys back through mcrouter"
found=$(keys count "127.0.0.1:$router_port")
echo "  $found of 30 keys still found: every key on mc-0 and mc-2 stayed put;"
echo "  mc-1's keys now go to its new, empty memcached (only that slot changed)"
((found == held[0] + held[2])) || fail "expected the $((held[0] + held[2])) keys of mc-0 and mc-2, found $found"

say "stop: SIGTERM to mcw is forwarded to mcrouter"
kill -TERM "$mcw_pid"; set +e; wait "$mcw_pid"; code=$?; set -e
grep -E "stopping mcrouter|mcrouter exited" "$work/mcw.log"
echo "  mcw exited with $code"
((code == 0)) || fail "mcw exited with $code, not 0"
say "demo passed"
