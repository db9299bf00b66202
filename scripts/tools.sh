# shellcheck shell=bash
# Tools built from Go modules for the deployment tests and releases, built
# once per version into $MCPEDGE_TOOLS_DIR (default ~/.cache/mcpedge-tools)
# as <name>-<version>/<name>. Sourced by scripts/test.sh and
# scripts/release.sh; deploy/main_test.go reads the versions from here.

HELM_VERSION=v4.3.2
HELM_MODULE=helm.sh/helm/v4/cmd/helm
CYCLONEDX_GOMOD_VERSION=v1.10.0
CYCLONEDX_GOMOD_MODULE=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod
# Jaeger v2 (an OpenTelemetry Collector distribution with an in-memory store
# and a query API): the trace backend of the tracing end-to-end test. Its
# go.mod has replace directives, so it is built inside a throwaway module.
JAEGER_VERSION=v1.75.0
JAEGER_MODULE=github.com/jaegertracing/jaeger/cmd/jaeger
# Stripe's official mock API server, for internal/billing's tests.
STRIPE_MOCK_VERSION=v0.203.0
STRIPE_MOCK_MODULE=github.com/stripe/stripe-mock

MCPEDGE_TOOLS_DIR=${MCPEDGE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpedge-tools}
export MCPEDGE_TOOLS_DIR

# go_tool NAME VERSION PACKAGE: print the path of the tool, building it
# first if this version is not in the cache yet (a few minutes, once).
# TOOL_IN_MODULE=1 go_tool ...: for a tool whose go.mod has replace directives.
go_tool() {
	local name=$1 version=$2 pkg=$3
	local dir="$MCPEDGE_TOOLS_DIR/$name-$version"
	if [ ! -x "$dir/$name" ]; then
		if [ "${SKIP_INSTALL:-0}" = 1 ]; then
			printf '%s %s is not built in %s, and SKIP_INSTALL=1\n' "$name" "$version" "$dir" >&2
			return 1
		fi
		printf '==> building %s %s once, into %s\n' "$name" "$version" "$dir" >&2
		mkdir -p "$dir.tmp"
		# Outside the module: the tool's own go.mod decides its dependencies.
		# A tool whose go.mod has replace directives can not be go-installed
		# by version: those (TOOL_IN_MODULE=1) are built as a tool of a
		# throwaway module instead.
		if [ "${TOOL_IN_MODULE:-0}" = 1 ]; then
			build() {
				cd "$dir.tmp" && go mod init mcpedge-tools/"$name" &&
					GOFLAGS=-mod=mod nice go get -tool "$pkg@$version" &&
					CGO_ENABLED=0 GOFLAGS=-mod=mod nice go build -trimpath -o "$dir.tmp/$name" "$pkg"
			}
		else
			build() {
				cd "$dir.tmp" && GOBIN="$dir.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod nice go install -trimpath "$pkg@$version"
			}
		fi
		if ! (build) >&2; then
			rm -rf "$dir.tmp"
			printf 'building %s %s failed\n' "$name" "$version" >&2
			return 1
		fi
		rm -rf "$dir"
		mkdir -p "$dir"
		mv "$dir.tmp/$name" "$dir/$name"
		rm -rf "$dir.tmp"
	fi
	printf '%s\n' "$dir/$name"
}
