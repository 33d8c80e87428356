# Sourced by mcw's scripts (bash).
#
# `stage NAME COMMAND…` runs the command between two lines naming it (prefixed with $STAGE
# when set), the second with the seconds it took.
stage() {
  local name=$1 start=$SECONDS
  shift
  echo "== ${STAGE:+$STAGE: }$name"
  "$@"
  echo "== ${STAGE:+$STAGE: }$name: $((SECONDS - start)) s"
}

# `apt_missing WHO PACKAGE:COMMAND…` installs, from Debian's archive, each package whose command is on neither PATH nor
# /usr/sbin, then stops the services Debian starts on install (the scripts start their own
# on loopback ports). Needs root when something is missing.
apt_missing() {
  local who=$1 pair missing=()
  shift
  for pair in "$@"; do
    command -v "${pair#*:}" >/dev/null 2>&1 || [[ -x /usr/sbin/${pair#*:} ]] ||
      missing+=("${pair%%:*}")
  done
  ((${#missing[@]})) || return 0
  echo "$who: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in memcached knot dnsmasq prometheus; do
    systemctl stop "$svc" >/dev/null 2>&1 || true
  done
}

# `real_mcrouter` prints the path of a real mcrouter, as the tests look for one:
# $MCW_TEST_MCROUTER, else `mcrouter` on PATH; it fails when there is none. When the binary is
# there but cannot run for want of its runtime libraries, it installs them first (the Debian
# packages of scripts/mcrouter-runtime-packages.txt: docs/real-mcrouter.md). Needs root for
# that.
real_mcrouter() {
  local top found
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ -n ${MCW_TEST_MCROUTER:-} ]]; then
    found=$MCW_TEST_MCROUTER
  elif command -v mcrouter >/dev/null 2>&1; then
    found=$(command -v mcrouter)
  else
    return 1
  fi
  if ! "$found" --version >/dev/null 2>&1; then
    local list
    list=$top/scripts/mcrouter-runtime-packages.txt
    if [[ -f $list ]]; then
      echo "installing the runtime libraries of $found ($list)" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      # shellcheck disable=SC2046
      apt-get install -y -qq --no-install-recommends $(cat "$list") >/dev/null
    fi
  fi
  "$found" --version >/dev/null 2>&1 || {
    echo "$found does not run: $("$found" --version 2>&1 | tail -1)" >&2
    return 1
  }
  echo "$found"
}
