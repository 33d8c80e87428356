#!/usr/bin/env bash
# Builds mcw's .deb and .rpm from a release build:
#   target/debian/mcw_<version>-1_<arch>.deb
#   target/generate-rpm/mcw-<version>-1.<arch>.rpm
# Needs cargo-deb and cargo-generate-rpm (installed here, pinned, when missing).
#
# The .deb's Maintainer field names whoever builds it: MCW_MAINTAINER ("Name <address>"),
# else DEBFULLNAME and DEBEMAIL as Debian's own tools read them, else the user at this host.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB=3.8.0
CARGO_GENERATE_RPM=0.21.1
for tool in "cargo-deb@$CARGO_DEB" "cargo-generate-rpm@$CARGO_GENERATE_RPM"; do
  name=${tool%@*} version=${tool#*@}
  if ! "$name" --version 2>/dev/null | grep -qF "$version"; then
    echo "package.sh: installing $tool" >&2
    cargo install --quiet --locked "$tool"
  fi
done

cargo build --locked --release --bin mcw

# Man pages and completions come from the clap definition; the RPM unit reads
# /etc/sysconfig/mcw where Debian's reads /etc/default/mcw.
rm -rf target/assets
cargo run --locked --quiet -p mcw-assets -- target/assets >/dev/null
gzip -9n target/assets/man/*.1
mkdir -p target/assets/rpm
sed 's|^EnvironmentFile=-/etc/default/mcw$|EnvironmentFile=-/etc/sysconfig/mcw|' \
  packaging/systemd/mcw.service >target/assets/rpm/mcw.service
grep -q '^EnvironmentFile=-/etc/sysconfig/mcw$' target/assets/rpm/mcw.service

# Debian wants its own changelog format: one entry for this version, pointing at CHANGELOG.md
# and dated by the last commit so that two builds of one commit are identical.
version=$(cargo metadata --locked --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "mcw"))')
maintainer=${MCW_MAINTAINER:-"${DEBFULLNAME:-mcw builder} <${DEBEMAIL:-$(id -un)@$(hostname -f 2>/dev/null || hostname)}>"}
echo "package.sh: mcw $version, maintainer $maintainer" >&2
{
  echo "mcw ($version-1) unstable; urgency=medium"
  echo
  echo "  * mcw $version; see /usr/share/doc/mcw/changelog.gz for what changed."
  echo
  echo " -- $maintainer  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} >target/assets/changelog
gzip -9n <CHANGELOG.md >target/assets/changelog.gz

cargo deb --locked --no-build --no-strip --maintainer "$maintainer"
cargo generate-rpm
ls -l target/debian/*.deb target/generate-rpm/*.rpm
