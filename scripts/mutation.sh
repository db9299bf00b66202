#!/usr/bin/env bash
# Mutation testing of the packages on the request path with gremlins
# (github.com/go-gremlins/gremlins): it changes one operator at a time
# (a < into <=, a == into !=, a + into -, ...), runs the package's tests
# against each change, and reports how many changes the tests caught
# (efficacy = killed / (killed + lived)). Not part of scripts/test.sh or CI:
# it takes minutes per package.
#
#   bash scripts/mutation.sh                      # the default packages
#   bash scripts/mutation.sh internal/jsonguard   # only these
#
# Environment:
#   GREMLINS_VERSION      gremlins module version (default v0.6.0)
#   MUTATION_WORKERS      mutants tested at once (default 1: the tests of
#                         one mutant already use the machine)
#   MUTATION_TEST_CPU     GOMAXPROCS of each test run (default 1)
#   MUTATION_TIMEOUT_COEF how many times the package's normal test time a
#                         mutant may take before it counts as timed out
#                         (default 5)
#   MUTATION_OUT          where the logs and JSON reports go
#                         (default a new directory under /tmp)
#
# The tests run as they do in CI, so packages whose tests need services
# (MCPEDGE_TEST_POSTGRES, MCPEDGE_TEST_REDIS) skip those tests unless the
# variables are set. Surviving ("LIVED") mutants are listed in each
# package's log: each is a change to the code no test noticed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=${GREMLINS_VERSION:-v0.6.0}
workers=${MUTATION_WORKERS:-1}
testcpu=${MUTATION_TEST_CPU:-1}
coef=${MUTATION_TIMEOUT_COEF:-5}
out=${MUTATION_OUT:-$(mktemp -d /tmp/mcpedge-mutation.XXXXXX)}
mkdir -p "$out"

pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(internal/jsonguard internal/principal internal/policy internal/auth internal/queue)
	# The pipeline and the request path's stage packages.
	for d in internal/pipeline internal/stage/*; do
		if [ -d "$d" ] && compgen -G "$d/*_test.go" >/dev/null; then
			pkgs+=("$d")
		fi
	done
fi

gremlins=(go run "github.com/go-gremlins/gremlins/cmd/gremlins@$version")
summary=()
for p in "${pkgs[@]}"; do
	p=${p#./}
	name=${p//\//_}
	echo "==> gremlins $version on ./$p (workers $workers, test cpu $testcpu, timeout coefficient $coef)" >&2
	start=$(date +%s)
	set +e
	"${gremlins[@]}" unleash --workers "$workers" --test-cpu "$testcpu" --timeout-coefficient "$coef" \
		-o "$out/$name.json" "./$p" >"$out/$name.log" 2>&1
	rc=$?
	set -e
	secs=$(($(date +%s) - start))
	killed=$(grep -oE 'Killed: [0-9]+' "$out/$name.log" | tail -1 | grep -oE '[0-9]+' || true)
	lived=$(grep -oE 'Lived: [0-9]+' "$out/$name.log" | tail -1 | grep -oE '[0-9]+' || true)
	uncovered=$(grep -oE 'Not covered: [0-9]+' "$out/$name.log" | tail -1 | grep -oE '[0-9]+' || true)
	timedout=$(grep -oE 'Timed out: [0-9]+' "$out/$name.log" | tail -1 | grep -oE '[0-9]+' || true)
	efficacy=$(grep -oE 'Test efficacy: [0-9.]+%' "$out/$name.log" | tail -1 | grep -oE '[0-9.]+%' || true)
	coverage=$(grep -oE 'Mutator coverage: [0-9.]+%' "$out/$name.log" | tail -1 | grep -oE '[0-9.]+%' || true)
	if [ $rc -ne 0 ] || [ -z "$efficacy" ]; then
		echo "gremlins failed on ./$p (exit $rc); see $out/$name.log:" >&2
		tail -20 "$out/$name.log" >&2
		summary+=("$(printf '%-28s %s' "./$p" "FAILED (exit $rc)")")
		continue
	fi
	grep -E '^ *LIVED ' "$out/$name.log" >&2 || true
	summary+=("$(printf '%-28s efficacy %-8s killed %-4s lived %-4s timed out %-4s not covered %-4s mutator coverage %-8s %ss' \
		"./$p" "$efficacy" "$killed" "$lived" "${timedout:-0}" "$uncovered" "$coverage" "$secs")")
done

echo
echo "Mutation testing (gremlins $version); logs and JSON in $out"
printf '%s\n' "${summary[@]}"
