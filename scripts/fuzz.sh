#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for FUZZTIME each (default 10s; `make fuzz` runs them
# longer). New inputs that fail are written under the package's testdata/fuzz/ and replayed by go test.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
fuzztime=${FUZZTIME:-10s}
fail=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	say "fuzz $name ($pkg, $fuzztime)"
	in_env go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" || fail=1
done < <(grep -rhoE --include='*_test.go' -H '^func (Fuzz[A-Za-z0-9_]+)\(' . | sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]+)\($#:\1#' | sort -u)
exit $fail
