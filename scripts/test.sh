#!/usr/bin/env bash
# `make test`: starts the services the suite needs (stopping them afterwards only if it started them),
# runs go vet, the house rules and every test against the real Postgres and S3 server, and prints a
# one-line summary.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

started=$(scripts/services.sh up)
cleanup() { [ "$started" = started ] && scripts/services.sh down || true; }
trap cleanup EXIT

export CACHET_TEST_DATABASE_URL=${CACHET_TEST_DATABASE_URL:-postgres://cachet@127.0.0.1:$PG_PORT/cachet_test?sslmode=disable}
export CACHET_TEST_S3_ENDPOINT=${CACHET_TEST_S3_ENDPOINT:-127.0.0.1:$S3_PORT}
# Test binaries run in parallel (one per package): one libtorch thread each avoids OpenMP oversubscription.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CACHET_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY CACHET_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
# Fault-injection tests start, stop and restart servers of their own.
export CACHET_TEST_PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin CACHET_TEST_VERSITYGW=$CACHET_TOOLS/versitygw

say "go vet"
in_env go vet ./...
scripts/house-rules.sh

say "go test"
log=$CACHET_STATE/log/test.log
mkdir -p "$(dirname "$log")"
set +e
in_env go test -count=1 -timeout 20m -v ./... 2>&1 | tee "$log" | grep -E '^(ok|FAIL|--- FAIL|panic|\?)|_test\.go:[0-9]+:'
rc=${PIPESTATUS[0]}
set -e
# A short run of every fuzz target (their corpora already ran as tests above); `make fuzz` runs them long.
if [ "$rc" = 0 ]; then
	say "fuzz (${FUZZTIME:-20000x} a target)"
	fuzzlog=$CACHET_STATE/log/fuzz.log
	if FUZZTIME=${FUZZTIME:-20000x} scripts/fuzz.sh >"$fuzzlog" 2>&1; then
		grep -E '^==> fuzz' "$fuzzlog" | sed 's/^==> /ok  /'
	else
		rc=1; echo "--- FAIL: fuzzing (log: $fuzzlog)"; grep -E -A20 -- '--- FAIL' "$fuzzlog" | head -60
	fi
fi
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
[ "$rc" = 0 ] || [ "$failed" -gt 0 ] || failed=1 # a build failure or panic counts as a failure
echo "(full output: $log)"
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
