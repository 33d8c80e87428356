#!/usr/bin/env bash
# A release of mcw: the .deb, the .rpm and the container image of one version, checked to agree
# with each other, with `mcw --version`, Cargo.toml and CHANGELOG.md.
#
#   MCW_MAINTAINER='Name <address>' MCROUTER_IMAGE=<image with mcrouter on PATH> \
#     scripts/release.sh 0.2.0
#
# Before: move CHANGELOG.md's "Unreleased" entries under a new "## 0.2.0 (YYYY-MM-DD)" (leaving
# an empty "## Unreleased" above it), set `version` in Cargo.toml, run `cargo update -p mcw`,
# and commit. The script refuses a dirty tree, a version the changelog does not have, and
# unreleased entries left behind. It builds, lints (lintian with no tag suppressed), checks,
# and puts the packages, the image (an OCI archive) and their SHA-256 sums in
# target/release-0.2.0/. After: tag the commit v0.2.0 and publish that folder.
#
#   scripts/release.sh --check VERSION IMAGE
#
# checks artefacts already built (target/release/mcw, target/debian, target/generate-rpm, and
# IMAGE): the packaging tests run it on what they built.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "release.sh: $*" >&2
  exit 1
}

# The version every artefact of VERSION must say, and that IMAGE says it too.
check() {
  local version=$1 image=$2 got
  got=$(cargo metadata --locked --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "mcw"))')
  [[ $got == "$version" ]] || die "Cargo.toml says $got, not $version"
  grep -q "^## $version (" CHANGELOG.md || die "CHANGELOG.md has no \"## $version (date)\" section"
  [[ $(grep -m1 '^## ' CHANGELOG.md) == "## Unreleased" ]] ||
    die "CHANGELOG.md does not start with an \"## Unreleased\" section"

  got=$(target/release/mcw --version)
  [[ $got == "mcw $version" ]] || die "target/release/mcw --version says \"$got\""
  local deb rpm
  deb=$(ls target/debian/mcw_"$version"-1_*.deb) || die "no .deb of $version in target/debian"
  got=$(dpkg-deb -f "$deb" Version)
  [[ $got == "$version-1" ]] || die "$deb says Version $got"
  rpm=$(ls target/generate-rpm/mcw-"$version"-1.*.rpm) || die "no .rpm of $version in target/generate-rpm"
  got=$(rpm -qp --qf '%{VERSION}' "$rpm" 2>/dev/null)
  [[ $got == "$version" ]] || die "$rpm says VERSION $got"
  # The binary in each package is the one checked above.
  cmp -s target/release/mcw <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/mcw) ||
    die "$deb holds another binary than target/release/mcw"
  cmp -s target/release/mcw <(rpm2archive -n - <"$rpm" | tar -xO ./usr/bin/mcw) ||
    die "$rpm holds another binary than target/release/mcw"

  got=$(podman image inspect --format '{{ index .Labels "org.opencontainers.image.version" }}' "$image")
  [[ $got == "$version" ]] || die "$image is labelled version \"$got\""
  got=$(podman run --rm --entrypoint /usr/bin/mcw "$image" --version)
  [[ $got == "mcw $version" ]] || die "mcw --version in $image says \"$got\""
  echo "release.sh: mcw $version: Cargo.toml, CHANGELOG.md, the binary, $(basename "$deb"), $(basename "$rpm") and $image agree"
}

if [[ ${1:-} == --check ]]; then
  [[ $# == 3 ]] || die "usage: scripts/release.sh --check VERSION IMAGE"
  check "$2" "$3"
  exit 0
fi

[[ $# == 1 ]] || die "usage: scripts/release.sh VERSION   (or --check VERSION IMAGE)"
version=$1
[[ -n ${MCW_MAINTAINER:-} ]] || die "set MCW_MAINTAINER to the packages' maintainer, 'Name <address>'"
[[ -n ${MCROUTER_IMAGE:-} ]] || die "set MCROUTER_IMAGE to an image with mcrouter on PATH (the image's base)"
[[ -z $(git status --porcelain) ]] || die "the working tree has uncommitted changes"
unreleased=$(awk '/^## Unreleased/ {on = 1; next} /^## / {on = 0} on && /^- /' CHANGELOG.md)
[[ -z $unreleased ]] || die "CHANGELOG.md's Unreleased section still has entries; move them under $version"

./scripts/package.sh
lintian --fail-on error target/debian/mcw_"$version"-1_*.deb
image=localhost/mcw-mcrouter:$version
podman build -f packaging/container/Containerfile --build-arg MCROUTER_IMAGE="$MCROUTER_IMAGE" \
  --build-arg MCW_VERSION="$version" -t "$image" .
check "$version" "$image"

out=target/release-$version
rm -rf "$out" && mkdir -p "$out"
cp target/debian/mcw_"$version"-1_*.deb target/generate-rpm/mcw-"$version"-1.*.rpm "$out"/
podman save --format oci-archive -o "$out/mcw-mcrouter-$version.oci.tar" "$image"
(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "release.sh: $out:"
ls -l "$out"
echo "release.sh: now tag the commit: git tag -a v$version -m 'mcw $version'"
