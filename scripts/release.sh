#!/usr/bin/env bash
# Build a release of mcpedge: static binaries for every platform, the
# container image (OCI layout, built without a container daemon), a
# CycloneDX SBOM, and SHA-256 checksums of all of them.
#
#   bash scripts/release.sh [--version V] [--out DIR] [--targets LIST] [--no-image] [--no-sbom]
#
#   --version V     the version stamped into the binaries (mcpedge version)
#                   and the image; default: git describe, else 0.0.0-dev
#   --out DIR       where to write (default dist/); emptied first
#   --targets LIST  comma-separated os/arch[/arm-version] (default: all):
#                   linux/amd64,linux/arm64,linux/arm/7,darwin/amd64,darwin/arm64,windows/amd64
#   --no-image      skip the container image
#   --no-sbom       skip the SBOM
#
# Output, for version V:
#   mcpedge-V-<os>-<arch>[.exe]   binaries (-trimpath, stripped, CGO_ENABLED=0);
#                                 linux/arm/7 is named ...-linux-armv7
#   mcpedge-V-<os>-<arch>.cdx.json  CycloneDX SBOM of each binary: the Go
#                                 version and the modules compiled in
#   mcpedge-V-oci.tar             OCI image layout (tar) of the linux images:
#                                 `skopeo copy oci-archive:mcpedge-V-oci.tar docker://REGISTRY/mcpedge:V`
#   SHA256SUMS                    `sha256sum -c SHA256SUMS` verifies them
#
# Builds are reproducible: the same source and Go version give the same
# bytes (file times come from SOURCE_DATE_EPOCH, default the commit's time).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

die() { printf 'release.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

VERSION=""
OUT=dist
TARGETS="linux/amd64,linux/arm64,linux/arm/7,darwin/amd64,darwin/arm64,windows/amd64"
IMAGE=1
SBOM=1
while [ $# -gt 0 ]; do
	case "$1" in
	--version) VERSION=${2:?--version needs a value}; shift 2 ;;
	--out) OUT=${2:?--out needs a value}; shift 2 ;;
	--targets) TARGETS=${2:?--targets needs a value}; shift 2 ;;
	--no-image) IMAGE=0; shift ;;
	--no-sbom) SBOM=0; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

command -v go >/dev/null 2>&1 || { [ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH; } || die "go is not installed"

if [ -z "$VERSION" ]; then
	VERSION=$(git describe --tags --always --dirty 2>/dev/null | sed 's/^v//') || true
	VERSION=${VERSION:-0.0.0-dev}
fi
# The version goes into file names and a linker flag: keep it plain.
[[ "$VERSION" =~ ^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$ ]] || die "version $VERSION: use letters, digits and . + _ - only"
REVISION=$(git rev-parse HEAD 2>/dev/null || true)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
rm -rf "$OUT"
mkdir -p "$OUT"

IMAGE_ARGS=()
BINARIES=()
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for target in "${TARGET_LIST[@]}"; do
	IFS=/ read -r goos goarch goarm extra <<<"$target"
	[ -n "$goos" ] && [ -n "$goarch" ] && [ -z "${extra:-}" ] || die "target $target: want os/arch or linux/arm/7"
	name="mcpedge-$VERSION-$goos-$goarch"
	case "$goos/$goarch" in
	linux/amd64 | linux/arm64 | darwin/amd64 | darwin/arm64 | windows/amd64) [ -z "$goarm" ] || die "target $target: only linux/arm takes a version" ;;
	linux/arm) [ "$goarm" = 7 ] || die "target $target: linux/arm is built as linux/arm/7"; name="mcpedge-$VERSION-linux-armv7" ;;
	*) die "target $target: not a release platform" ;;
	esac
	[ "$goos" = windows ] && name="$name.exe"
	log "build $name"
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
		go build -trimpath -ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$OUT/$name" ./cmd/mcpedge
	BINARIES+=("$OUT/$name")
	if [ "$goos" = linux ]; then
		platform="linux/$goarch"
		[ -n "$goarm" ] && platform="linux/arm/v$goarm"
		IMAGE_ARGS+=("$platform=$OUT/$name")
	fi
done

if [ "$SBOM" = 1 ]; then
	# shellcheck source=scripts/tools.sh
	. scripts/tools.sh
	CDX=$(go_tool cyclonedx-gomod "$CYCLONEDX_GOMOD_VERSION" "$CYCLONEDX_GOMOD_MODULE") || die "cyclonedx-gomod is not available"
	# One SBOM per binary, from the module list Go embeds in it (what was
	# compiled in, with the Go version and build settings).
	for bin in "${BINARIES[@]}"; do
		sbom="${bin%.exe}.cdx.json"
		log "SBOM $(basename "$sbom")"
		"$CDX" bin -json -std -version "v$VERSION" -output "$sbom" "$bin" >&2 || die "cyclonedx-gomod failed for $bin"
	done
fi

if [ "$IMAGE" = 1 ] && [ ${#IMAGE_ARGS[@]} -gt 0 ]; then
	log "image mcpedge-$VERSION-oci.tar (${IMAGE_ARGS[*]##*=})"
	layout="$OUT/.oci"
	go run ./deploy/mkimage build --version "$VERSION" --revision "$REVISION" --layout "$layout" "${IMAGE_ARGS[@]}"
	# A reproducible tar of the layout.
	tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
		-C "$layout" -cf "$OUT/mcpedge-$VERSION-oci.tar" .
	rm -rf "$layout"
fi

log "checksums"
(cd "$OUT" && sha256sum mcpedge-* >SHA256SUMS)
cat "$OUT/SHA256SUMS"
log "release $VERSION in $OUT"
