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
