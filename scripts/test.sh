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

# The packaging tests (packaging/test/run.sh) build and lint the packages, build a Debian base
# image, and run systemd and mcw's image under podman.
. scripts/lib.sh
apt_missing test.sh dnsmasq-base:dnsmasq knot:knotd memcached:memcached tini:tini \
  dumb-init:dumb-init prometheus:prometheus podman:podman runc:runc mmdebstrap:mmdebstrap \
  lintian:lintian rpm:rpm rpm2cpio:rpm2archive rpmlint:rpmlint
# Kubernetes' schemas, for the manifests in packaging/kubernetes.
KUBERNETES_VALIDATE=1.37.0
if ! kubernetes-validate --version 2>/dev/null | grep -qF "$KUBERNETES_VALIDATE"; then
  echo "test.sh: installing kubernetes-validate $KUBERNETES_VALIDATE (PyPI)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "kubernetes-validate==$KUBERNETES_VALIDATE"
fi
# Debian starts services on install; tests start their own on loopback ports.
for svc in memcached knot dnsmasq prometheus; do
  systemctl stop "$svc" >/dev/null 2>&1 || true
done

# The tests that start mcrouter run against the project's stand-in and, when there is one,
# against a real mcrouter too.
if MCW_TEST_MCROUTER=$(real_mcrouter); then
  export MCW_TEST_MCROUTER
  echo "test.sh: mcrouter tests run against the stand-in and the real mcrouter $MCW_TEST_MCROUTER ($("$MCW_TEST_MCROUTER" --version))"
else
  unset MCW_TEST_MCROUTER
  echo "test.sh: no real mcrouter found (MCW_TEST_MCROUTER, mcrouter on PATH; docs/real-mcrouter.md): mcrouter tests run against the stand-in only"
fi

STAGE=test.sh
stage "cargo tests" cargo test --locked --workspace --lib --bins --tests "$@"
stage "packaging tests (packaging/test/run.sh)" ./packaging/test/run.sh
stage "fuzzing, 20 s per target (scripts/fuzz.sh)" ./scripts/fuzz.sh 20
