#!/usr/bin/env bash
# The packaging tests: each deliverable of packaging/ is installed or run for real, with the
# real mcrouter when there is one (scripts/lib.sh, real_mcrouter) and the project's stand-in
# otherwise, and real memcached behind it.
#   1. packages   .deb and .rpm built; lintian (no errors), rpmlint, their file lists
#   2. systemd    the .deb installed into a container running systemd as PID 1, with mcrouter
#                 as /usr/bin/mcrouter: start, a key through mcrouter to memcached, reload
#                 after a DNS change, upgrade, stop (exit 0), remove, purge
#   3. rpm        the .rpm installed the same way with rpm itself (Debian's), run under systemd
#                 with /etc/sysconfig/mcw: start, reload, stop (exit 0), erase
#   4. container  the image built by podman from packaging/container/Containerfile on a Debian
#                 base with mcrouter: mcw is PID 1, a key reaches memcached, a DNS change is
#                 confirmed, stop forwards SIGTERM (exit 0), or SIGKILLs (137)
#   5. kubernetes the manifests validated against Kubernetes' schemas; the ConfigMap's
#                 template rendered by `mcw check` against a local DNS server
# Run by scripts/test.sh after the cargo tests, as root, with podman, mmdebstrap, lintian,
# rpm, rpmlint, dnsmasq and kubernetes-validate installed (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

export CONTAINERS_CONF=$ROOT/packaging/test/containers.conf
WORK=$(mktemp -d /tmp/mcw-packaging.XXXXXX)
LABEL=mcw-packaging-test
. scripts/lib.sh
STAGE=packaging

# The mcrouter the packages and the image run: the real one when there is one (its runtime
# libraries go into the base image), else the stand-in.
if MCROUTER_BIN=$(real_mcrouter); then
  MCROUTER_LIBS=$(paste -sd, scripts/mcrouter-runtime-packages.txt)
  echo "packaging: with the real mcrouter $MCROUTER_BIN ($("$MCROUTER_BIN" --version))"
else
  cargo build --locked --quiet -p mcrouter-standin
  MCROUTER_BIN=$ROOT/target/debug/mcrouter
  MCROUTER_LIBS=
  echo "packaging: no real mcrouter found: with the project's stand-in"
fi
BASE_PACKAGES=systemd,systemd-sysv,dbus,dnsmasq-base,procps,man-db,memcached,rpm${MCROUTER_LIBS:+,$MCROUTER_LIBS}
# The base image is rebuilt only when what goes into it changes.
BASE=localhost/mcw-test-base:$(echo "bookworm $BASE_PACKAGES" | md5sum | cut -c1-12)
MCROUTER_IMAGE=localhost/mcw-test-mcrouter:latest
IMAGE=localhost/mcw-test-image:latest
VERSION=$(cargo metadata --locked --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "mcw"))')

remove_containers() {
  # Twice: a container whose network namespace another one joined goes only after that one.
  local pass
  for pass in 1 2; do
    podman ps -aq --filter "label=$LABEL" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  done
}
cleanup() {
  remove_containers
  [[ -n ${DNS_PID:-} ]] && kill "$DNS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# (A `| grep -q` would end the pipe early, and `pipefail` would count the writer's SIGPIPE
# as a failure: pipes below are read to the end with `grep -c … >/dev/null`.)

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for: $what"
    sleep 0.2
  done
}

# inside CONTAINER COMMAND...: runs a shell command line inside a running container.
inside() {
  local c=$1
  shift
  podman exec "$c" bash -c "$*"
}

# What mcrouter says it runs: the md5 of its config, over its admin port.
MCROUTER_MD5='exec 3<>/dev/tcp/127.0.0.1/5000
printf "get __mcrouter__.config_md5_digest\r\n" >&3
while IFS= read -r -t 2 line <&3; do
  line=${line%$'"'"'\r'"'"'}
  case $line in VALUE*) read -r -t 2 md5 <&3; echo "${md5%$'"'"'\r'"'"'}";; END) exit 0;; esac
done'

# mcrouter_runs_file CONTAINER: true once mcrouter reports the md5 of the rendered file.
mcrouter_runs_file() {
  local reported file
  reported=$(inside "$1" "$MCROUTER_MD5")
  file=$(inside "$1" "md5sum </run/mcw/mcrouter.json | cut -d' ' -f1")
  [[ -n $reported && $reported == "$file" ]]
}

rendered_has() { inside "$1" "grep -qF '\"$2\"' /run/mcw/mcrouter.json"; }

# ---------------------------------------------------------------------------------------
packages() {
  ./scripts/package.sh
  DEB=$(ls target/debian/mcw_*.deb)
  RPM=$(ls target/generate-rpm/mcw-*.rpm)

  # The binary carries no man page or completion: they are generated at package time.
  if grep -qaF -e '_mcw()' -e '.TH mcw' target/release/mcw; then
    fail "target/release/mcw contains man page or completion text"
  fi
  echo "release binary: $(stat -c %s target/release/mcw) bytes"

  # A test build names its builder as the maintainer (root at this host), which lintian calls
  # an error; scripts/release.sh, which needs MCW_MAINTAINER, lints with nothing suppressed.
  local suppress=()
  [[ -n ${MCW_MAINTAINER:-} ]] ||
    suppress=(--suppress-tags bogus-mail-host,bogus-mail-host-in-debian-changelog,root-in-contact)
  lintian --fail-on error --display-level '>=warning' "${suppress[@]}" "$DEB" ||
    fail "lintian reports errors on $DEB"

  # BENCHMARKS.md's binary size is within 10 % of this build's: a release profile or a
  # dependency that changes it by more calls for the figure to be measured again.
  local size doc
  size=$(stat -c %s target/release/mcw)
  doc=$(sed -n 's/^| `target\/release\/mcw` | \([0-9,]*\) |.*/\1/p' BENCHMARKS.md | tr -d ,)
  [[ -n $doc ]] || fail "BENCHMARKS.md gives no size of target/release/mcw"
  ((size * 10 >= doc * 9 && size * 10 <= doc * 11)) ||
    fail "target/release/mcw is $size bytes; BENCHMARKS.md says $doc: measure the sizes again"

  local want_deb want_rpm
  want_deb='/etc/default/mcw
/etc/mcw/template.json
/usr/bin/mcw
/usr/lib/systemd/system/mcw.service
/usr/lib/sysusers.d/mcw.conf
/usr/share/bash-completion/completions/mcw
/usr/share/doc/mcw/README.md
/usr/share/doc/mcw/changelog.Debian.gz
/usr/share/doc/mcw/changelog.gz
/usr/share/doc/mcw/copyright
/usr/share/fish/vendor_completions.d/mcw.fish
/usr/share/man/man1/mcw-check.1.gz
/usr/share/man/man1/mcw-diff.1.gz
/usr/share/man/man1/mcw-render.1.gz
/usr/share/man/man1/mcw-run.1.gz
/usr/share/man/man1/mcw-watch.1.gz
/usr/share/man/man1/mcw.1.gz
/usr/share/mcw/grafana/mcw-dashboard.json
/usr/share/mcw/prometheus/mcw-alerts.test.yml
/usr/share/mcw/prometheus/mcw-alerts.yml
/usr/share/zsh/vendor-completions/_mcw'
  # The README's docs/ folder, whatever it holds.
  local docs
  docs=$(cd docs && ls ./*.md | sed 's|^\./|/usr/share/doc/mcw/docs/|')
  want_deb=$(printf '%s\n%s\n' "$want_deb" "$docs" | sort)
  diff -u <(echo "$want_deb") <(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {print substr($6, 2)}' | sort) ||
    fail "the .deb's files differ from the expected list (above)"
  diff -u <(printf '/etc/default/mcw\n/etc/mcw/template.json\n') \
    <(dpkg-deb -I "$DEB" conffiles) ||
    fail "the .deb's conffiles differ"

  want_rpm='/etc/mcw/template.json
/etc/sysconfig/mcw
/usr/bin/mcw
/usr/lib/systemd/system/mcw.service
/usr/lib/sysusers.d/mcw.conf
/usr/share/bash-completion/completions/mcw
/usr/share/doc/mcw/CHANGELOG.md
/usr/share/doc/mcw/README.md
/usr/share/fish/vendor_completions.d/mcw.fish
/usr/share/licenses/mcw/LICENSE
/usr/share/man/man1/mcw-check.1.gz
/usr/share/man/man1/mcw-diff.1.gz
/usr/share/man/man1/mcw-render.1.gz
/usr/share/man/man1/mcw-run.1.gz
/usr/share/man/man1/mcw-watch.1.gz
/usr/share/man/man1/mcw.1.gz
/usr/share/mcw/grafana/mcw-dashboard.json
/usr/share/mcw/prometheus/mcw-alerts.test.yml
/usr/share/mcw/prometheus/mcw-alerts.yml
/usr/share/zsh/site-functions/_mcw'
  want_rpm=$(printf '%s\n%s\n' "$want_rpm" "$docs" | sort)
  diff -u <(echo "$want_rpm") <(rpm -qlp "$RPM" 2>/dev/null | sort) ||
    fail "the .rpm's files differ from the expected list (above)"
  diff -u <(printf '/etc/mcw/template.json\n/etc/sysconfig/mcw\n') <(rpm -qcp "$RPM" 2>/dev/null | sort) ||
    fail "the .rpm's config files differ"
  rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$RPM" 2>/dev/null | grep -x 'cn /etc/sysconfig/mcw' >/dev/null ||
    fail "/etc/sysconfig/mcw is not %config(noreplace)"
  # The RPM's unit reads /etc/sysconfig/mcw; everything else is the Debian unit's.
  # (rpm2archive: Debian's rpm2cpio 4.18 exits 1 on this package although its output is whole)
  local units
  units=$(diff <(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/lib/systemd/system/mcw.service) \
    <(rpm2archive -n - <"$RPM" | tar -xO ./usr/lib/systemd/system/mcw.service) | grep '^[<>]' || true)
  [[ $units == $'< EnvironmentFile=-/etc/default/mcw\n> EnvironmentFile=-/etc/sysconfig/mcw' ]] ||
    fail "the units of the two packages differ in more than the environment file: $units"

  rpmlint -c packaging/rpm/rpmlint.toml "$RPM" || fail "rpmlint reports errors on $RPM"
}

# ---------------------------------------------------------------------------------------
base_image() {
  if podman image exists "$BASE"; then
    echo "reusing $BASE"
    return
  fi
  mmdebstrap --quiet --variant=apt --include="$BASE_PACKAGES" bookworm "$WORK/rootfs.tar"
  podman import --quiet "$WORK/rootfs.tar" "$BASE" >/dev/null
  rm -f "$WORK/rootfs.tar"
}

# A file list of the container's filesystem, leaving out what changes by itself.
SNAPSHOT='find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
  -o -path /var/log -o -path /var/cache -o -path /var/lib/dpkg -o -path /var/lib/systemd \
  -o -path /etc/mcw-test -o -path /root \) -prune -o -print | sort'

# memcached_roundtrip CONTAINER: a key set through mcrouter (port 5000) is on the memcached
# the rendered config names.
memcached_roundtrip() {
  local c=$1 key=k$RANDOM
  inside "$c" "exec 3<>/dev/tcp/127.0.0.1/5000; printf 'set $key 0 0 2\r\nhi\r\n' >&3; read -r -t 5 r <&3; [[ \$r == STORED* ]]" ||
    fail "mcrouter in $c did not store a key"
  local server
  server=$(inside "$c" "grep -o '127\.0\.0\.[0-9]*:11311' /run/mcw/mcrouter.json | head -1")
  inside "$c" "exec 3<>/dev/tcp/${server%:*}/11311; printf 'get $key\r\n' >&3; read -r -t 5 r <&3; [[ \$r == 'VALUE $key'* ]]" ||
    fail "the key set through mcrouter is not on $server"
}

# start_test_service CONTAINER ENVFILE: DNS (dnsmasq on 127.0.0.1:5353, a long TTL so that
# only `systemctl reload` makes mcw ask again), two memcached on 127.0.0.1 and 127.0.0.2,
# the operator's edits (template, MCW_DNS_SERVER in ENVFILE), then `systemctl start mcw`
# and a key through mcrouter.
start_test_service() {
  local c=$1 envfile=$2
  inside $c 'mkdir -p /etc/mcw-test && echo "127.0.0.1 cache.test" >/etc/mcw-test/hosts
    systemd-run --quiet --unit=testdns /usr/sbin/dnsmasq -k --port=5353 --listen-address=127.0.0.1 \
      --bind-interfaces --no-resolv --no-hosts --addn-hosts=/etc/mcw-test/hosts --local-ttl=3600 --user=root
    systemd-run --quiet --unit=mc1 /usr/bin/memcached -u nobody -l 127.0.0.1 -p 11311 -U 0
    systemd-run --quiet --unit=mc2 /usr/bin/memcached -u nobody -l 127.0.0.2 -p 11311 -U 0'
  inside $c "printf '%s\n' '{\"pools\": {\"main\": {\"servers\": [\"dns+11311://cache.test\"]}}, \"route\": \"PoolRoute|main\"}' \
      >/etc/mcw/template.json
    echo MCW_DNS_SERVER=127.0.0.1:5353 >>$envfile"
  # Type=notify: `systemctl start` returns once mcw said READY=1, which it says once mcrouter
  # runs the config it rendered; so no waiting here.
  inside $c 'systemctl start mcw' || fail "systemctl start mcw failed"
  [[ $(inside $c 'systemctl is-active mcw' || true) == active ]] || fail "mcw.service not active after start"
  rendered_has $c 127.0.0.1:11311 || fail "systemctl start returned before the config was rendered"
  mcrouter_runs_file $c || fail "systemctl start returned before mcrouter ran the rendered config"
  memcached_roundtrip $c
  inside $c 'systemctl show -p StatusText --value mcw' | grep -q '^mcrouter runs config [0-9a-f]\{8\} (1 pools, 1 servers)$' ||
    fail "mcw's STATUS= is not in systemctl status: $(inside $c 'systemctl show -p StatusText --value mcw')"
  # The watchdog is fed from mcw's event loop (WatchdogSec=30s: every 15 s, the first at once).
  [[ $(inside $c 'systemctl show -p WatchdogTimestampMonotonic --value mcw') != 0 ]] ||
    fail "mcw sent no WATCHDOG=1"
}

# start_fails_test_service CONTAINER ENVFILE: a token that never resolves, and a short startup
# timeout: `systemctl start` itself fails (Type=notify), rather than succeeding for a service
# that then dies.
start_fails_test_service() {
  local c=$1 envfile=$2
  inside $c "cp $envfile /tmp/envfile.keep && cp /etc/mcw/template.json /tmp/template.keep
    echo MCW_STARTUP_TIMEOUT=2s >>$envfile
    printf '%s\n' '{\"pools\": {\"main\": {\"servers\": [\"dns+11311://nowhere.test\"]}}, \"route\": \"PoolRoute|main\"}' >/etc/mcw/template.json"
  if inside $c 'systemctl start mcw'; then
    fail "systemctl start mcw succeeded although mcw never had a config for mcrouter"
  fi
  inside $c "systemctl reset-failed mcw; cp /tmp/envfile.keep $envfile && cp /tmp/template.keep /etc/mcw/template.json"
}

# reload_test_service CONTAINER: DNS moves the server to 127.0.0.2; `systemctl reload`
# re-renders, and the same mcrouter (and mcw) load the file.
reload_test_service() {
  local c=$1 mcrouter_pid main_pid
  mcrouter_pid=$(inside $c 'pgrep -x -u mcw mcrouter') || fail "mcrouter is not running as mcw"
  main_pid=$(inside $c 'systemctl show -p MainPID --value mcw')
  inside $c 'echo "127.0.0.2 cache.test" >/etc/mcw-test/hosts && systemctl kill -s HUP testdns'
  inside $c 'systemctl reload mcw'
  wait_until "re-rendered after systemctl reload" 30 rendered_has $c 127.0.0.2:11311
  wait_until "mcrouter running the re-rendered config" 30 mcrouter_runs_file $c
  # RELOADING=1 put the unit in "reloading"; READY=1 once the reload was done puts it back.
  wait_until "mcw.service active again after the reload" 30 \
    inside $c '[[ $(systemctl show -p ActiveState --value mcw) == active ]]'
  memcached_roundtrip $c
  [[ $(inside $c 'pgrep -x -u mcw mcrouter') == "$mcrouter_pid" ]] || fail "reload restarted mcrouter"
  [[ $(inside $c 'systemctl show -p MainPID --value mcw') == "$main_pid" ]] || fail "reload restarted mcw"
  inside $c 'journalctl -u mcw -o cat' | grep -c '^ INFO mcw::service::child: re-reading the template and re-resolving every token.*signal=SIGHUP' >/dev/null ||
    fail "mcw did not log the SIGHUP of systemctl reload (without a timestamp of its own)"
}

# stop_test_service CONTAINER: `systemctl stop` ends mcrouter gracefully (exit 0) and mcw with
# it, and nothing is killed.
stop_test_service() {
  local c=$1 mcrouter_pid show since
  mcrouter_pid=$(inside $c 'pgrep -x -u mcw mcrouter')
  since=$(inside $c 'date +%s')
  inside $c 'systemctl stop mcw'
  show=$(inside $c 'systemctl show -p Result -p ExecMainStatus mcw' | paste -sd' ')
  [[ $show == 'Result=success ExecMainStatus=0' ]] ||
    fail "mcw.service did not stop cleanly: $show"
  inside $c 'journalctl -u mcw -o cat' | grep -c "mcrouter exited pid=$mcrouter_pid exit_code=0" >/dev/null ||
    fail "mcrouter did not exit 0 on stop"
  # (Since the stop: the start that was meant to fail, earlier, left its own lines.)
  if inside $c "journalctl -u mcw -o cat --since @$since" | grep -E 'SIGKILL|Killing process|Failed with result'; then
    fail "stopping mcw.service killed something"
  fi
  inside $c 'test ! -e /run/mcw' || fail "/run/mcw left after stop"
}

# systemd_container NAME: a container running systemd as PID 1, with mcrouter at
# /usr/bin/mcrouter.
systemd_container() {
  local c=$1
  podman run -d --name $c --label $LABEL --systemd=always --privileged "$BASE" /sbin/init >/dev/null
  wait_until "systemd running in $c" 60 inside $c 'systemctl is-system-running | grep -Eq "^(running|degraded)$"'
  podman cp "$MCROUTER_BIN" $c:/usr/bin/mcrouter
}

systemd_deb() {
  local c=mcw-sd
  systemd_container $c
  podman cp target/debian/mcw_*.deb $c:/tmp/mcw.deb
  inside $c "$SNAPSHOT" >"$WORK/before"

  inside $c 'dpkg -i /tmp/mcw.deb'
  [[ $(inside $c 'systemctl is-enabled mcw' || true) == disabled ]] || fail "installing enabled mcw.service"
  [[ $(inside $c 'systemctl is-active mcw' || true) == inactive ]] || fail "installing started mcw.service"
  inside $c 'getent passwd mcw | grep -q ":/usr/sbin/nologin$"' || fail "no system user mcw"
  inside $c 'man -w mcw-run && man -w mcw' >/dev/null || fail "man pages not found by man"

  start_fails_test_service $c /etc/default/mcw
  start_test_service $c /etc/default/mcw
  inside $c 'stat -c "%U %a" /run/mcw /run/mcw/mcrouter.json' | grep -vc '^mcw ' >/dev/null &&
    fail "/run/mcw or the rendered config not owned by mcw"
  local main_pid
  main_pid=$(inside $c 'systemctl show -p MainPID --value mcw')
  reload_test_service $c

  # upgrade (the same package again takes the upgrade path): a running service restarts on
  # the new binary; the operator's edits of both conffiles are kept.
  inside $c 'dpkg -i /tmp/mcw.deb' >/dev/null
  wait_until "mcw.service active after the upgrade" 30 inside $c 'systemctl is-active mcw'
  [[ $(inside $c 'systemctl show -p MainPID --value mcw') != "$main_pid" ]] ||
    fail "upgrading did not restart the running service"
  inside $c 'grep -qx MCW_DNS_SERVER=127.0.0.1:5353 /etc/default/mcw && grep -q cache.test /etc/mcw/template.json' ||
    fail "upgrading lost the edits of /etc/default/mcw or /etc/mcw/template.json"
  wait_until "mcrouter running the config after the upgrade" 30 mcrouter_runs_file $c

  inside $c 'systemd-analyze verify /usr/lib/systemd/system/mcw.service' || fail "systemd-analyze verify"
  echo "systemd-analyze security mcw: $(inside $c 'systemd-analyze security --no-pager mcw' | grep 'Overall exposure')"
  stop_test_service $c

  # remove: only the conffiles (both edited), the state directory (with mcrouter's files in
  # it) and the mask that deb-systemd-helper puts on a removed unit stay; purge: nothing.
  inside $c 'dpkg -r mcw' >/dev/null
  inside $c "$SNAPSHOT" >"$WORK/removed"
  # (What mcrouter keeps in /var/lib/mcw, its config dumps and stats, stays with the directory.)
  diff -u <(printf '%s\n' /etc/default/mcw /etc/mcw /etc/mcw/template.json \
    /etc/systemd/system/mcw.service /var/lib/mcw) \
    <(diff "$WORK/before" "$WORK/removed" | sed -n 's/^[<>] //p' | grep -v '^/var/lib/mcw/') ||
    fail "dpkg -r left other files than these (above)"
  [[ $(inside $c 'readlink /etc/systemd/system/mcw.service') == /dev/null ]] ||
    fail "/etc/systemd/system/mcw.service after dpkg -r is not deb-systemd-helper's mask"
  inside $c 'dpkg -P mcw' >/dev/null
  inside $c "$SNAPSHOT" >"$WORK/purged"
  diff -u "$WORK/before" "$WORK/purged" || fail "dpkg -P left files (above)"
  podman rm -f -t 0 $c >/dev/null
}

# ---------------------------------------------------------------------------------------
# The .rpm, installed by rpm itself (Debian's: --force-debian; --nodeps, since what the package
# requires is an RPM distribution's and this is Debian), run under systemd with its
# /etc/sysconfig/mcw, then erased.
systemd_rpm() {
  local c=mcw-rpm
  systemd_container $c
  podman cp target/generate-rpm/mcw-*.rpm $c:/tmp/mcw.rpm
  inside $c 'rpm -i --force-debian --nodeps /tmp/mcw.rpm' || fail "rpm -i failed"
  inside $c 'rpm -q mcw' >/dev/null || fail "rpm does not know mcw"
  [[ $(inside $c 'systemctl is-active mcw' || true) == inactive ]] || fail "installing the rpm started mcw.service"
  inside $c 'getent passwd mcw' >/dev/null || fail "the rpm made no system user mcw"
  inside $c 'grep -qx "EnvironmentFile=-/etc/sysconfig/mcw" /usr/lib/systemd/system/mcw.service' ||
    fail "the rpm's unit does not read /etc/sysconfig/mcw"
  start_test_service $c /etc/sysconfig/mcw
  reload_test_service $c
  stop_test_service $c
  inside $c 'rpm -e mcw' || fail "rpm -e failed"
  inside $c 'test ! -e /usr/bin/mcw && test ! -e /usr/lib/systemd/system/mcw.service' ||
    fail "rpm -e left the binary or the unit"
  podman rm -f -t 0 $c >/dev/null
}

# ---------------------------------------------------------------------------------------
container() {
  # The mcrouter base image: mcrouter as /usr/bin/mcrouter on the Debian base (which holds
  # its runtime libraries).
  mkdir -p "$WORK/mcrouter"
  cp "$MCROUTER_BIN" "$WORK/mcrouter/mcrouter"
  printf 'FROM %s\nCOPY mcrouter /usr/bin/mcrouter\n' "$BASE" >"$WORK/mcrouter/Containerfile"
  podman build --quiet -t "$MCROUTER_IMAGE" "$WORK/mcrouter" >/dev/null
  # The image, built as users build it: from the repository root.
  podman build --quiet -f packaging/container/Containerfile \
    --build-arg MCROUTER_IMAGE="$MCROUTER_IMAGE" --build-arg MCW_VERSION="$VERSION" \
    -t "$IMAGE" . >/dev/null
  # The packages, the binary, the image, Cargo.toml and CHANGELOG.md say one version.
  ./scripts/release.sh --check "$VERSION" "$IMAGE" || fail "the artefacts' versions disagree"

  # DNS and two memcached in their own containers; the mcw containers join their network
  # namespace (loopback).
  mkdir -p "$WORK/dns"
  echo "127.0.0.1 cache.test" >"$WORK/dns/hosts"
  printf '%s\n' '{"pools": {"main": {"servers": ["dns+11311://cache.test"]}}, "route": "PoolRoute|main"}' \
    >"$WORK/template.json"
  podman run -d --name mcw-dns --label $LABEL -v "$WORK/dns:/dns:ro" "$BASE" \
    dnsmasq -k --port=5353 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --addn-hosts=/dns/hosts --local-ttl=3600 --user=root >/dev/null
  local ip
  for ip in 127.0.0.1 127.0.0.2; do
    podman run -d --name "mcw-mc-$ip" --label $LABEL --network=container:mcw-dns "$BASE" \
      memcached -u nobody -l $ip -p 11311 -U 0 >/dev/null
  done
  local run=(podman run -d --label $LABEL --network=container:mcw-dns
    -v "$WORK/template.json:/etc/mcw/template.json:ro" -e MCW_DNS_SERVER=127.0.0.1:5353)

  local c=mcw-c
  "${run[@]}" --name $c "$IMAGE" >/dev/null
  wait_until "mcrouter running the rendered config in the container" 30 mcrouter_runs_file $c
  [[ $(inside $c 'cat /proc/1/comm') == mcw ]] || fail "PID 1 of the container is not mcw"
  local mcrouter_pid
  mcrouter_pid=$(inside $c 'pgrep -x mcrouter')
  inside $c "grep -q '^PPid:[[:space:]]*1$' /proc/$mcrouter_pid/status" || fail "mcrouter is not mcw's child"
  rendered_has $c 127.0.0.1:11311 || fail "the rendered config lacks the DNS answer"
  memcached_roundtrip $c

  echo "127.0.0.2 cache.test" >"$WORK/dns/hosts"
  podman kill -s HUP mcw-dns >/dev/null
  podman kill -s HUP $c >/dev/null
  wait_until "re-rendered after SIGHUP" 30 rendered_has $c 127.0.0.2:11311
  wait_until "mcrouter running the re-rendered config" 30 mcrouter_runs_file $c
  memcached_roundtrip $c
  [[ $(inside $c 'pgrep -x mcrouter') == "$mcrouter_pid" ]] || fail "SIGHUP restarted mcrouter"

  podman stop -t 20 $c >/dev/null
  [[ $(podman inspect -f '{{.State.ExitCode}}' $c) == 0 ]] ||
    fail "podman stop: container exited $(podman inspect -f '{{.State.ExitCode}}' $c), not 0"
  podman logs $c 2>&1 | grep -c "stopping mcrouter signal=SIGTERM" >/dev/null || fail "mcw did not forward SIGTERM"
  podman logs $c 2>&1 | grep -c "mcrouter exited pid=$mcrouter_pid exit_code=0" >/dev/null || fail "mcrouter did not exit 0"

  # A child that ignores SIGTERM: mcw SIGKILLs it after --stop-timeout; the container exits 137.
  c=mcw-c-stubborn
  "${run[@]}" --name $c -e MCW_STOP_TIMEOUT=1s "$IMAGE" bash -c "trap '' TERM; exec sleep infinity" >/dev/null
  wait_until "the stubborn child running" 30 inside $c 'pgrep -x sleep'
  podman stop -t 20 $c >/dev/null
  [[ $(podman inspect -f '{{.State.ExitCode}}' $c) == 137 ]] ||
    fail "a child ignoring SIGTERM: container exited $(podman inspect -f '{{.State.ExitCode}}' $c), not 137"
  podman logs $c 2>&1 | grep -c "stop timeout passed; sending SIGKILL" >/dev/null || fail "mcw did not SIGKILL the child"
}

# ---------------------------------------------------------------------------------------
kubernetes() {
  local manifests=(packaging/kubernetes/memcached.yaml packaging/kubernetes/mcrouter.yaml)
  kubernetes-validate --strict --quiet "${manifests[@]}" || fail "manifests do not validate"
  # The validator does reject a wrong manifest (a number given as a string).
  sed 's/terminationGracePeriodSeconds: 35/terminationGracePeriodSeconds: "35"/' \
    packaging/kubernetes/mcrouter.yaml >"$WORK/broken.yaml"
  if kubernetes-validate --strict --quiet "$WORK/broken.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted a broken manifest"
  fi

  # Facts the manifests must keep, read from them: the headless Service publishes pods that
  # are not ready; the grace period outlasts mcw's stop timeout; the probes hit mcw.
  python3 - "${manifests[@]}" "$WORK/template.json" <<'EOF'
import re, sys, yaml
docs = [d for f in sys.argv[1:3] for d in yaml.safe_load_all(open(f)) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
svc = by[("Service", "memcached")]["spec"]
assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True, svc
pod = by[("Deployment", "mcrouter")]["spec"]["template"]["spec"]
env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
stop = int(re.fullmatch(r"(\d+)s", env["MCW_STOP_TIMEOUT"]).group(1))
assert pod["terminationGracePeriodSeconds"] > stop, (pod["terminationGracePeriodSeconds"], stop)
c = pod["containers"][0]
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert env["MCW_METRICS_LISTEN"].endswith(":9150")
template = by[("ConfigMap", "mcrouter-template")]["data"]["template.json"]
assert "dnssrv://" in template
open(sys.argv[3], "w").write(template)
EOF

  # The ConfigMap's template, checked as a pod in namespace "default" would resolve it.
  local port
  port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local zone=default.svc.cluster.local
  dnsmasq -k --port="$port" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --pid-file= --user=root \
    --srv-host=_memcache._tcp.memcached.$zone,memcached-1.memcached.$zone,11211,0,0 \
    --srv-host=_memcache._tcp.memcached.$zone,memcached-0.memcached.$zone,11211,0,0 \
    --srv-host=_memcache._tcp.memcached.$zone,memcached-2.memcached.$zone,11211,0,0 \
    --host-record=memcached-0.memcached.$zone,10.8.0.10 \
    --host-record=memcached-1.memcached.$zone,10.8.0.11 \
    --host-record=memcached-2.memcached.$zone,10.8.0.12 &
  DNS_PID=$!
  printf 'search %s svc.cluster.local cluster.local\noptions ndots:5\nnameserver 127.0.0.1\n' "$zone" \
    >"$WORK/resolv.conf"
  local out
  wait_until "dnsmasq answering on 127.0.0.1:$port" 10 \
    target/release/mcw check --template "$WORK/template.json" --resolv-conf "$WORK/resolv.conf" \
    --dns-server "127.0.0.1:$port"
  out=$(target/release/mcw check --template "$WORK/template.json" --resolv-conf "$WORK/resolv.conf" \
    --dns-server "127.0.0.1:$port") || fail "mcw check of the ConfigMap's template failed"
  echo "$out"
  echo "$out" | tr -s ' ,[]"' '\n' | grep -E '^10\.8\.0\.' | paste -sd' ' |
    grep -qx '10.8.0.10:11211 10.8.0.11:11211 10.8.0.12:11211' ||
    fail "the ConfigMap's template did not render the three pods in pod order"
}

start=$SECONDS
remove_containers # left by an interrupted run
stage "packages (.deb, .rpm, lintian, rpmlint)" packages
stage "base image (mmdebstrap, podman import)" base_image
stage "systemd: the .deb installed and run" systemd_deb
stage "systemd: the .rpm installed by rpm and run" systemd_rpm
stage "container image (podman)" container
stage "kubernetes manifests" kubernetes
echo "== packaging: all passed in $((SECONDS - start)) s"
