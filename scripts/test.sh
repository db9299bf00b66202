#!/usr/bin/env bash
# The one command that installs what mcpedge's tests need and runs them all.
#
#   bash scripts/test.sh                  # everything: ./...
#   bash scripts/test.sh ./internal/e2e/...   # only these packages
#
# Works on a fresh Debian machine as root (or with sudo), is idempotent, and
# is quick when everything is already installed.
#
# Environment:
#   GO_TEST_TIMEOUT   go test -timeout (default 20m)
#   GO_TEST_FLAGS     extra go test flags (e.g. "-run TestFoo -v")
#   SKIP_INSTALL=1    do not install anything, only check and test
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
NODE_DIR=test/node
STAMP=$NODE_DIR/node_modules/.mcpedge-installed

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

APT_UPDATED=0
apt_install() {
	[ "${SKIP_INSTALL:-0}" = 1 ] && die "missing $*, and SKIP_INSTALL=1"
	command -v apt-get >/dev/null 2>&1 || die "missing $*, and no apt-get to install it"
	if [ "$APT_UPDATED" = 0 ]; then
		log "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# ---------------------------------------------------------------- Go
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || die "go is not installed (need the version in go.mod: $(awk '/^go /{print $2}' go.mod)); install it from the official Go distribution"
# -race needs cgo and a C compiler.
if ! command -v gcc >/dev/null 2>&1; then
	apt_install gcc libc6-dev
fi
export CGO_ENABLED=1

# ---------------------------------------------------------------- Node (real MCP peers for the e2e tests)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	apt_install nodejs npm
fi
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old; the MCP SDK needs node >= 18"

# npm ci only when node_modules does not match package-lock.json (and node).
lock_sum() {
	{ sha256sum "$NODE_DIR/package-lock.json" "$NODE_DIR/package.json"; node --version; } | sha256sum | cut -d' ' -f1
}
WANT=$(lock_sum)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
	&& [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] \
	&& [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ]; then
	log "node test dependencies up to date"
else
	[ "${SKIP_INSTALL:-0}" = 1 ] && die "node test dependencies missing or stale, and SKIP_INSTALL=1"
	log "npm ci --prefix $NODE_DIR"
	npm ci --prefix "$NODE_DIR" --prefer-offline --no-audit --no-fund --loglevel=error
	echo "$WANT" >"$STAMP"
fi

# ---------------------------------------------------------------- services (later work)
# >>> SERVICES: later work goes here. Install and start what the
# >>> PostgreSQL/Redis/browser tests need, e.g.
# >>>   apt_install postgresql redis-server chromium
# >>>   as_root service postgresql start; as_root service redis-server start
# >>> and export the DSNs/paths the tests read. Nothing is installed yet.
# <<< SERVICES

# ---------------------------------------------------------------- checks and tests
log "gofmt"
UNFORMATTED=$(find . -name '*.go' -not -path './.git/*' -not -path "./$NODE_DIR/node_modules/*" -print0 | xargs -0 -r gofmt -l)
if [ -n "$UNFORMATTED" ]; then
	printf 'gofmt: these files need formatting:\n%s\n' "$UNFORMATTED" >&2
	exit 1
fi

PKGS=("$@")
[ ${#PKGS[@]} -gt 0 ] || PKGS=(./...)

log "go vet ${PKGS[*]}"
go vet "${PKGS[@]}"

# The default build is pure Go and must keep cross-compiling for devices.
log "cross-compile check (CGO_ENABLED=0: linux/amd64, linux/arm64, linux/arm)"
for target in linux/amd64 linux/arm64 linux/arm; do
	CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} GOARM=7 go build -o /dev/null ./cmd/mcpedge
done

log "go test -race ${PKGS[*]}"
# shellcheck disable=SC2086 # GO_TEST_FLAGS is deliberately word-split
go test -race -count=1 -timeout "${GO_TEST_TIMEOUT:-20m}" ${GO_TEST_FLAGS:-} "${PKGS[@]}"
log "all tests passed"
